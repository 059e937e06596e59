"""The bundled sample studies as bytes to edit, for the header and acceptance tests."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from hilum.samples.dicom_files import write_sample_studies

ROWS, COLUMNS = 256, 200


def write_small_samples(out_dir: Path) -> list[Path]:
    """The bundled sample studies at ROWS x COLUMNS, in SAMPLE_STUDIES order."""
    return write_sample_studies(out_dir, rows=ROWS, columns=COLUMNS)


def edited_bytes(path: Path, change: Callable[[Dataset], None]) -> bytes:
    """Part 10 bytes of the DICOM file at path after an edit to its dataset."""
    ds = pydicom.dcmread(path)
    change(ds)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def bare_bytes(ds: Dataset) -> bytes:
    """A dataset encoded alone: no preamble, no DICM prefix, no file meta (implicit VR little endian)."""
    out = BytesIO()
    pydicom.dcmwrite(out, Dataset(ds), implicit_vr=True, little_endian=True)
    return out.getvalue()
