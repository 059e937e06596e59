"""Acceptance rule 7: Pixel Data present, complete, single-frame greyscale and encoded as its syntax says."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
)

from hilum.ingestion.rejection import RejectedInstance
from hilum.ingestion.rules_pixels import check_pixel_data, check_pixel_format, check_pixel_length
from hilum.samples import bad_inputs as bad
from hilum.v1 import ingestion_pb2
from tests.unit.common.dicom.sample_bytes import COLUMNS, ROWS
from tests.unit.ingestion.acceptance_checks import Edit, code_of, rejection

Code = ingestion_pb2.RejectionCode
# pydicom warns about the values these tests make malformed on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_pixel_rules_read_a_dataset_on_their_own(sample_files: list[Path]) -> None:
    ds = pydicom.dcmread(sample_files[0])
    syntax = ExplicitVRLittleEndian
    assert check_pixel_data(ds, syntax) == b""  # native pixels have no compressed first fragment
    assert check_pixel_format(ds) == (ROWS, COLUMNS)
    check_pixel_length(ds, syntax, ROWS * COLUMNS * 2)
    ds.PhotometricInterpretation = "RGB"
    with pytest.raises(RejectedInstance) as raised:
        check_pixel_format(ds)
    assert raised.value.code == Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT


# Through accept_instance


# 7. Pixel data


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"PhotometricInterpretation": "RGB"}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"PhotometricInterpretation": "YBR_FULL"}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"SamplesPerPixel": 3}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"NumberOfFrames": 2}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"NumberOfFrames": 0}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsStored": 6, "HighBit": 5}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsStored": 17}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsAllocated": 32}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"Rows": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"Columns": 0}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"SamplesPerPixel": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"BitsAllocated": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"PixelRepresentation": 2}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"PhotometricInterpretation": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
    ],
)
def test_pixel_format_is_checked(edited: Edit, change: dict[str, object], code: int) -> None:
    def apply(ds: Dataset) -> None:
        for keyword, value in change.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)

    assert code_of(edited(apply)) == code


def test_truncated_pixel_data_is_incomplete(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    rejected = rejection(content[: len(content) - 1000])
    assert rejected.code == Code.REJECTION_CODE_NO_PIXEL_DATA
    assert rejected.reason == (
        f"Pixel Data is incomplete: it holds {ROWS * COLUMNS * 2 - 1000} bytes where Rows, Columns and "
        f"Bits Allocated need {ROWS * COLUMNS * 2}"
    )


def test_a_compressed_frame_must_match_rows_and_columns_before_it_is_decoded() -> None:
    variants = {v.name: v for v in bad.bad_inputs()}
    bomb = rejection(variants["jpeg2000-frame-declares-40000-square"].content)
    assert bomb.reason == (
        f"The compressed frame is 40000 x 40000 pixels of 1 components where the dataset says {ROWS} x {COLUMNS} "
        "greyscale"
    )
    assert "3 components" in rejection(variants["jpeg-frame-of-three-components"].content).reason
