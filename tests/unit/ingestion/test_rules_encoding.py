"""Acceptance rules 1 and 2: readable DICOM, and a transfer syntax Hilum decodes and the dataset follows."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    RLELossless,
)

from hilum.ingestion.rejection import RejectedInstance
from hilum.ingestion.rules_encoding import PIXEL_DATA, is_encapsulated, parse, raw_element, transfer_syntax
from hilum.samples import bad_inputs as bad
from hilum.v1 import ingestion_pb2
from tests.unit.ingestion.acceptance_checks import code_of, rejection

Code = ingestion_pb2.RejectionCode
# pydicom warns about the values these tests make malformed on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_encoding_rules_read_a_sample_and_its_transfer_syntax(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    ds = parse(content)
    assert transfer_syntax(ds, part10=True) == "1.2.840.10008.1.2.1"
    assert not is_encapsulated(raw_element(ds, PIXEL_DATA))
    with pytest.raises(RejectedInstance) as raised:
        parse(b"")
    assert raised.value.code == Code.REJECTION_CODE_NOT_DICOM


# Through accept_instance


# 1. Readable DICOM


def test_garbage_and_empty_bytes_are_not_dicom() -> None:
    garbage = random.Random(3).randbytes(4096)
    for content in (garbage, b"", bytes(128) + b"DICM" + garbage, b"\x08\x00" + garbage):
        assert code_of(content) == Code.REJECTION_CODE_NOT_DICOM
    assert rejection(garbage).reason.startswith("The content is not DICOM")


def test_a_file_cut_inside_its_header_is_truncated_not_missing_attributes(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    cut = content[: content.index(b"Synthetic image made") + 5]
    rejected = rejection(cut)
    assert rejected.code == Code.REJECTION_CODE_NOT_DICOM
    assert rejected.reason.startswith("The content is truncated")


# 2. Transfer syntax


def test_compressed_pixels_in_a_bare_dataset_have_no_transfer_syntax(sample_files: list[Path]) -> None:
    ds = pydicom.dcmread(sample_files[0])
    ds.compress(RLELossless)
    out = io.BytesIO()
    pydicom.dcmwrite(out, Dataset(ds), implicit_vr=False, little_endian=True)
    rejected = rejection(out.getvalue())
    assert rejected.code == Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX
    assert "no file meta information" in rejected.reason


def test_unknown_transfer_syntax_is_named_in_the_reason() -> None:
    variant = next(v for v in bad.bad_inputs() if v.name == "mpeg4-video")
    assert "MPEG-4 AVC/H.264 High Profile / Level 4.1 is not supported" in rejection(variant.content).reason
