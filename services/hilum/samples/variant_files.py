"""The base image of every bad input and acceptable oddity, and the ways a variant is written.

A small (ROWS x COLUMNS) DX chest image of one fictional patient, with UIDs and noise seeded by the
variant's name; written as a conformant Part 10 file, as raw bytes under any file meta, or as a bare
dataset; and the builders that turn an edit of the dataset into a variant's bytes.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from datetime import date
from io import BytesIO

import numpy as np
import numpy.typing as npt
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    UID,
)

from hilum.samples.dicom_files import dx_dataset
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy

ROWS, COLUMNS = 256, 200
PATIENT_ID = "SYN-000919"
PATIENT_NAME = "SYNTHETIC^ERIN"
Builder = Callable[[str], bytes]  # a variant's bytes from its name


def variant_seed(name: str) -> int:
    """A seed of the variant's own, so its UIDs and noise are its own and the same on every run."""
    return 9_000_000 + zlib.crc32(name.encode("ascii")) % 1_000_000


def variant_study(name: str, rows: int = ROWS, columns: int = COLUMNS) -> SyntheticStudy:
    """The fictional study behind variant `name`: the first sample study's acquisition, another patient."""
    return dataclasses.replace(
        SAMPLE_STUDIES[0],
        patient_id=PATIENT_ID,
        patient_name=PATIENT_NAME,
        birth_date=date(1962, 5, 17),
        sex="F",
        seed=variant_seed(name),
        label=name,
        rows=rows,
        columns=columns,
    )


def variant_dataset(name: str, rows: int = ROWS, columns: int = COLUMNS) -> Dataset:
    return dx_dataset(variant_study(name, rows, columns))


def native_pixels(ds: Dataset) -> npt.NDArray[np.uint16]:
    """The dataset's 16-bit native pixels, (rows, columns)."""
    return np.frombuffer(ds.PixelData, dtype="<u2").reshape(int(ds.Rows), int(ds.Columns))


def part10(ds: Dataset) -> bytes:
    """ds as a conformant Part 10 file in its file meta's transfer syntax."""
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def raw_part10(
    ds: Dataset, meta: FileMetaDataset, *, standard_meta: bool = True, implicit: bool = False, preamble: bytes = b""
) -> bytes:
    """Preamble, DICM, meta exactly as given, and ds in explicit (or implicit) VR little endian whatever
    meta claims.

    pydicom's dcmwrite rewrites the SOP UIDs of the meta and refuses raw pixels under a compressed syntax:
    a peer is bound by neither, so neither are these variants.
    """
    fp = DicomBytesIO()
    fp.write(preamble.ljust(128, b"\0")[:128] + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=standard_meta)
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def file_meta_of(ds: Dataset, syntax: str | None) -> FileMetaDataset:
    """ds's file meta, naming `syntax` (none when None)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    if syntax is not None:
        meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = ds.file_meta.ImplementationClassUID
    return meta


def bare_dataset(ds: Dataset) -> bytes:
    """ds alone, implicit VR little endian: no preamble, no file meta (as a DIMSE peer sends it)."""
    out = BytesIO()
    dcmwrite(out, Dataset(ds), implicit_vr=True, little_endian=True)
    return out.getvalue()


def encapsulated(ds: Dataset, frame: bytes, syntax: UID) -> Dataset:
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    return ds


def set_sop_class(ds: Dataset, sop_class: str, modality: str) -> None:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.Modality = modality


def blocky_8bit(ds: Dataset) -> npt.NDArray[np.uint8]:
    """The image in 8 bits, flat in each 8 x 8 block (what dc_only_jpeg can carry)."""
    blocks = (native_pixels(ds) >> 4).reshape(ROWS // 8, 8, COLUMNS // 8, 8).mean(axis=(1, 3)).round()
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1).astype(np.uint8)


def edited(change: Callable[[Dataset], object]) -> Callable[[str], bytes]:
    """A builder: the variant's DX dataset after `change`, as a Part 10 file."""

    def build(name: str) -> bytes:
        ds = variant_dataset(name)
        change(ds)
        return part10(ds)

    return build


def delete(*keywords: str) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for keyword in keywords:
            delattr(ds, keyword)

    return change


def assign(**values: object) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds, keyword, value)

    return change
