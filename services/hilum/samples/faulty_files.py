"""Builders of bad inputs whose fault is in the file: not DICOM, cut short, a transfer syntax Hilum cannot
read or that its bytes do not follow, compressed frames that are garbage, bombs or missing.
"""

from __future__ import annotations

import copy
import struct
import zlib
from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from hilum.samples.jpeg_encoders import dc_only_jpeg, lossless_jpeg
from hilum.samples.variant_files import (
    COLUMNS,
    ROWS,
    blocky_8bit,
    encapsulated,
    file_meta_of,
    native_pixels,
    part10,
    raw_part10,
    variant_dataset,
    variant_seed,
)


def claims(syntax: UID, *, standard_meta: bool = True) -> Callable[[str], bytes]:
    """A builder: raw pixels in explicit VR little endian under a meta that names `syntax`."""

    def build(name: str) -> bytes:
        ds = variant_dataset(name)
        return raw_part10(ds, file_meta_of(ds, syntax), standard_meta=standard_meta)

    return build


def implicit_under_explicit_meta(name: str) -> bytes:
    ds = variant_dataset(name)
    return raw_part10(ds, file_meta_of(ds, ExplicitVRLittleEndian), implicit=True)


def deflate_bomb(name: str) -> bytes:
    """A deflated dataset of 300 MiB of zeros: about 300 KiB sent, more than Hilum inflates."""
    ds = variant_dataset(name)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(2**20)
    stream = b"".join(deflater.compress(zeros) for _ in range(300)) + deflater.flush()
    fp = DicomBytesIO()
    fp.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(fp, file_meta_of(ds, DeflatedExplicitVRLittleEndian))
    return bytes(fp.getvalue()) + stream


def j2k_bomb(ds: Dataset) -> bytes:
    """A small JPEG 2000 frame whose SIZ segment declares 40000 x 40000 pixels (a decompression bomb)."""
    work = copy.deepcopy(ds)
    work.compress(JPEG2000Lossless, generate_instance_uid=False)
    frame = bytearray(next(generate_frames(work.PixelData, number_of_frames=1)))
    siz = frame.index(b"\xff\x51")
    struct.pack_into(">II", frame, siz + 6, 40_000, 40_000)
    return bytes(frame)


def three_component_jpeg(ds: Dataset) -> bytes:
    """The baseline JPEG of the image with its frame header saying three components (colour)."""
    frame = bytearray(dc_only_jpeg(blocky_8bit(ds).astype(np.uint16), 8))
    frame[frame.index(b"\xff\xc0") + 9] = 3
    return bytes(frame)


def no_transfer_syntax(name: str) -> bytes:
    ds = variant_dataset(name)
    return raw_part10(ds, file_meta_of(ds, None), standard_meta=False)


def meta_mismatch(keyword: str, value: str) -> Callable[[str], bytes]:
    def build(name: str) -> bytes:
        ds = variant_dataset(name)
        meta = file_meta_of(ds, ExplicitVRLittleEndian)
        setattr(meta, keyword, UID(value))
        return raw_part10(ds, meta)

    return build


def cut(fraction_or_marker: float | bytes, extra: int = 0) -> Callable[[str], bytes]:
    """A builder: the Part 10 file cut at a fraction of its length, or `extra` bytes after a marker."""

    def build(name: str) -> bytes:
        content = part10(variant_dataset(name))
        if isinstance(fraction_or_marker, bytes):
            return content[: content.index(fraction_or_marker) + extra]
        return content[: int(len(content) * fraction_or_marker)]

    return build


def garbage(name: str, size: int = 4096) -> bytes:
    return np.random.default_rng(variant_seed(name)).integers(0, 256, size, dtype=np.uint8).tobytes()


def png_header(name: str) -> bytes:
    ihdr = struct.pack(">IIBBBBB", COLUMNS, ROWS, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + garbage(name, 512)


def jpeg_file(name: str) -> bytes:
    return dc_only_jpeg(blocky_8bit(variant_dataset(name)).astype(np.uint16), 8)


def dicom_json(name: str) -> bytes:
    return variant_dataset(name).to_json(bulk_data_threshold=1, bulk_data_element_handler=lambda _: "").encode("utf-8")


def prefixed_garbage(name: str) -> bytes:
    return bytes(128) + b"DICM" + garbage(name)



def encapsulated_frame(syntax: UID, frame: Callable[[Dataset], bytes]) -> Callable[[str], bytes]:
    def build(name: str) -> bytes:
        ds = variant_dataset(name)
        return part10(encapsulated(ds, frame(ds), syntax))

    return build


def encapsulated_under_native_syntax(name: str) -> bytes:
    ds = variant_dataset(name)
    ds.PixelData = encapsulate([lossless_jpeg(native_pixels(ds), 12)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return raw_part10(ds, file_meta_of(ds, ExplicitVRLittleEndian))


def offset_table_only(name: str) -> bytes:
    ds = variant_dataset(name)
    encapsulated(ds, b"\0\0", RLELossless)
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # an empty Basic Offset Table item, no fragment
    return part10(ds)


def truncated_encapsulated(name: str) -> bytes:
    ds = variant_dataset(name)
    ds.compress(RLELossless, generate_instance_uid=False)
    content = part10(ds)
    return content[: len(content) - len(ds.PixelData) // 2]


def oversized_compressed(name: str) -> bytes:
    ds = variant_dataset(name)
    ds.compress(RLELossless, generate_instance_uid=False)
    ds.Rows = ds.Columns = 20_000  # the frame holds 256 x 200: a decompression bomb's header
    return part10(ds)
