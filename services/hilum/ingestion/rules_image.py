"""Acceptance rule 8: an image that can be assessed, with guards that run before anything is decoded.

NOT_ASSESSABLE when the declared size is tiny, a strip or beyond any detector, or the decoded image has
values that are not finite or is blank; PIXEL_DATA_UNDECODABLE when a compressed frame's own header
disagrees with Rows and Columns (a decompression bomb), or the pixels do not decode to the declared size.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import UID, JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

from hilum.common.dicom.pixels import ImageUnreadable, Radiograph, decode_radiograph
from hilum.ingestion.rejection import RejectedInstance
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode
# No chest detector comes near this many pixels (43 cm at 70 µm is 6100 on a side); declared sizes
# beyond it are refused before decoding, so a forged header cannot make the decoder allocate gigabytes.
MAX_IMAGE_PIXELS = 50_000_000
# An image where fewer than this share of pixels differ from the most common value is blank (a blank
# plate with a marker or a label): nothing a model or a radiologist can read.
MIN_VARYING_SHARE = 0.01
_BLANK_SAMPLE_PIXELS = 250_000  # the blank test looks at a regular subsample of about this many pixels
# Start-of-frame markers: SOF0 to SOF15 but DHT (C4), JPG (C8) and DAC (CC), and JPEG-LS SOF55 (F7).
_JPEG_START_OF_FRAME = frozenset(set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}


# 8. An image that can be assessed


def check_geometry(rows: int, columns: int, min_side_px: int, max_aspect_ratio: float) -> None:
    """The declared size is that of a radiograph: not tiny, not a strip, not beyond any detector."""
    not_assessable = Code.REJECTION_CODE_NOT_ASSESSABLE
    if min(rows, columns) < min_side_px:
        raise RejectedInstance(
            not_assessable,
            f"The image is {rows} x {columns} pixels: too small to assess "
            f"(at least {min_side_px} on each side)",
        )
    if max(rows, columns) > max_aspect_ratio * min(rows, columns):
        raise RejectedInstance(
            not_assessable,
            f"The image is {rows} x {columns} pixels: its aspect ratio is beyond {max_aspect_ratio:g} to 1, "
            "which no chest radiograph has",
        )
    if rows * columns > MAX_IMAGE_PIXELS:
        raise RejectedInstance(
            not_assessable,
            f"The image is {rows} x {columns} pixels: larger than any radiograph detector "
            f"(at most {MAX_IMAGE_PIXELS} pixels)",
        )


def check_codestream(fragment: bytes, syntax: UID, rows: int, columns: int) -> None:
    """A JPEG, JPEG-LS or JPEG 2000 frame's own header agrees with Rows and Columns and holds one component.

    Decoders size their output by the codestream's header, not the dataset's: without this check a
    small frame declaring 40000 x 40000 pixels makes the JPEG 2000 decoder allocate gigabytes.
    """
    if syntax in JPEG2000TransferSyntaxes:
        size = _j2k_size(fragment)
    elif syntax in JPEGTransferSyntaxes or syntax in JPEGLSTransferSyntaxes:
        size = _jpeg_size(fragment)
    else:
        return  # RLE and native pixels are decoded into Rows x Columns
    undecodable = Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE
    if size is None:
        raise RejectedInstance(
            undecodable, f"Pixel Data is not {syntax.name} data: its first frame has no readable frame header"
        )
    if size != (rows, columns, 1):
        frame_rows, frame_columns, components = size
        raise RejectedInstance(
            undecodable,
            f"The compressed frame is {frame_rows} x {frame_columns} pixels of {components} components where the "
            f"dataset says {rows} x {columns} greyscale",
        )


def _jpeg_size(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) from a JPEG or JPEG-LS frame's start-of-frame segment (T.81 B.2.2)."""
    if not frame.startswith(b"\xff\xd8"):
        return None
    position = 2
    while position + 4 <= len(frame):
        if frame[position] != 0xFF:
            return None
        marker = frame[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        (length,) = struct.unpack_from(">H", frame, position + 2)
        if marker in _JPEG_START_OF_FRAME and position + 10 <= len(frame):
            rows, columns = struct.unpack_from(">HH", frame, position + 5)
            return rows, columns, frame[position + 9]
        if marker == 0xDA:  # start of scan before any frame header
            return None
        position += 2 + length
    return None


def _j2k_size(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) from a JPEG 2000 codestream's SIZ segment (T.800 A.5.1), found in a bare
    codestream or inside a JP2 file."""
    start = frame.find(b"\xff\x4f\xff\x51")
    if start < 0 or start + 42 > len(frame):
        return None
    width, height, x_offset, y_offset = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    return height - y_offset, width - x_offset, components


def decode(ds: Dataset, syntax: UID, rows: int, columns: int) -> Radiograph:
    """The image as inference will see it; PIXEL_DATA_UNDECODABLE when its bytes do not decode to it."""
    undecodable = Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE
    try:
        image = decode_radiograph(ds)
    except ImageUnreadable as error:
        raise RejectedInstance(undecodable, str(error)) from error
    except Exception as error:  # decoders meet adversarial bytes: any failure is the data's
        raise RejectedInstance(undecodable, f"Pixel Data could not be decoded ({syntax.name})") from error
    if image.pixels.shape != (rows, columns):
        raise RejectedInstance(
            undecodable,
            f"Pixel Data decodes to {image.pixels.shape[0]} x {image.pixels.shape[1]} pixels where Rows and "
            f"Columns say {rows} x {columns}",
        )
    return image


def check_image(image: Radiograph) -> None:
    """The decoded image has finite values that vary: it can show something."""
    not_assessable = Code.REJECTION_CODE_NOT_ASSESSABLE
    pixels = image.pixels
    if not np.isfinite(pixels).all():
        raise RejectedInstance(
            not_assessable,
            "The image has values that are not finite after its Modality and VOI LUTs (e.g. an absurd Rescale Slope)",
        )
    if _varying_share(pixels) < MIN_VARYING_SHARE:
        raise RejectedInstance(
            not_assessable,
            "The image is blank: after its Modality and VOI LUTs almost every pixel has the same value",
        )


def _varying_share(pixels: npt.NDArray[np.float32]) -> float:
    """The share of pixels that differ from the most common value, from a regular subsample.

    When more than half the pixels share one value, that value is the median; otherwise the share is
    at least one half anyway, so the median is as good as the mode for telling a blank image.
    """
    step = max(1, int(np.sqrt(pixels.size / _BLANK_SAMPLE_PIXELS)))
    sample = pixels[::step, ::step]
    return float(np.count_nonzero(sample != np.median(sample))) / sample.size
