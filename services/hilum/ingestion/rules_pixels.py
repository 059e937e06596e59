"""Acceptance rule 7: Pixel Data is present and complete, a single greyscale frame Hilum can read.

NO_PIXEL_DATA when it is absent, empty or cut short; MISSING_ATTRIBUTE when an Image Pixel attribute
needed to read it is absent or invalid; UNSUPPORTED_PIXEL_FORMAT unless it is one frame of 1-sample
greyscale of 8 to 16 bits; PIXEL_DATA_UNDECODABLE when it is not encoded as the transfer syntax says.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.uid import UID

from hilum.common.dicom.attributes import integer, printable, text
from hilum.ingestion.rejection import RejectedInstance
from hilum.ingestion.rules_encoding import PIXEL_DATA, incomplete_pixel_data, is_encapsulated, raw_element
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode
SUPPORTED_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
_OTHER_PIXEL_DATA = {"FloatPixelData": "Float Pixel Data", "DoubleFloatPixelData": "Double Float Pixel Data"}


# 7. Pixel data


def check_pixel_data(ds: Dataset, syntax: UID) -> bytes:
    """Pixel Data is present, not empty, and encapsulated exactly when the transfer syntax compresses.

    Returns the first fragment of compressed Pixel Data (the start of the first frame); b"" when native.
    """
    for keyword, name in _OTHER_PIXEL_DATA.items():
        if keyword in ds and PIXEL_DATA not in ds:
            raise RejectedInstance(
                Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT,
                f"{name} is not supported: Hilum reads integer Pixel Data (7FE0,0010)",
            )
    element = raw_element(ds, PIXEL_DATA)
    value = getattr(element, "value", None)
    if element is None or not isinstance(value, bytes) or not value:
        raise RejectedInstance(
            Code.REJECTION_CODE_NO_PIXEL_DATA,
            "The instance has no Pixel Data (7FE0,0010), or it is empty: Hilum needs the image itself",
        )
    undecodable = Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE
    if syntax.is_encapsulated != is_encapsulated(element):
        expected = "compressed frames (encapsulated)" if syntax.is_encapsulated else "uncompressed pixels"
        raise RejectedInstance(
            undecodable,
            f"Pixel Data does not match its transfer syntax: {syntax.name} needs {expected}, the instance "
            "holds the other",
        )
    if syntax.is_encapsulated:
        try:
            items = list(generate_fragments(value))
        except ValueError as error:
            raise RejectedInstance(
                undecodable, f"Pixel Data is not valid {syntax.name} data: its fragment items are damaged"
            ) from error
        fragments = [item for item in items[1:] if item]  # the first item is the Basic Offset Table
        if not fragments:
            raise RejectedInstance(
                Code.REJECTION_CODE_NO_PIXEL_DATA,
                "Pixel Data holds no compressed frame, only an offset table: Hilum needs the image itself",
            )
        return fragments[0]
    return b""


def check_pixel_format(ds: Dataset) -> tuple[int, int]:
    """(rows, columns) of one frame of 1-sample greyscale with 8 to 16 bits stored in 8 or 16 allocated."""
    photometric = text(ds, "PhotometricInterpretation").upper()
    if not photometric:
        raise _missing("Photometric Interpretation")
    rows = _required_count(ds, "Rows", "Rows")
    columns = _required_count(ds, "Columns", "Columns")
    samples = _required_count(ds, "SamplesPerPixel", "Samples per Pixel")
    bits_allocated = _required_count(ds, "BitsAllocated", "Bits Allocated")
    bits_stored = _required_count(ds, "BitsStored", "Bits Stored")
    if integer(ds, "PixelRepresentation") not in (0, 1):
        raise _missing("Pixel Representation")

    unsupported = Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT
    if photometric not in SUPPORTED_PHOTOMETRIC or samples != 1:
        raise RejectedInstance(
            unsupported,
            f"Photometric Interpretation {printable(photometric)} with {samples} samples per pixel is not "
            "supported: Hilum reads greyscale images (MONOCHROME1, MONOCHROME2)",
        )
    frames = integer(ds, "NumberOfFrames")
    if frames is not None and frames != 1:
        shown = f"{frames} frames" if frames > 1 else "an invalid Number of Frames"
        raise RejectedInstance(
            unsupported, f"Multi-frame images ({shown}) are not supported: Hilum reads single-frame images"
        )
    if bits_allocated not in (8, 16) or not 8 <= bits_stored <= bits_allocated:
        raise RejectedInstance(
            unsupported,
            f"{bits_stored} bits stored in {bits_allocated} allocated is not supported: "
            "Hilum reads 8 to 16 bits stored in 8 or 16 allocated",
        )
    return rows, columns


def _required_count(ds: Dataset, keyword: str, name: str) -> int:
    """A positive integer attribute the image cannot be read without."""
    value = integer(ds, keyword)
    if value is None or value <= 0:
        raise _missing(name)
    return value


def _missing(name: str) -> RejectedInstance:
    """The rejection for a pixel description attribute that is absent or invalid."""
    return RejectedInstance(
        Code.REJECTION_CODE_MISSING_ATTRIBUTE, f"{name} is missing or invalid: it is needed to read the image"
    )


def check_pixel_length(ds: Dataset, syntax: UID, expected: int) -> None:
    """Uncompressed Pixel Data holds every byte the image needs (a transfer cut short holds fewer)."""
    if syntax.is_encapsulated:
        return  # compressed frames are checked by decoding them
    value = getattr(raw_element(ds, PIXEL_DATA), "value", b"")
    if isinstance(value, bytes) and len(value) < expected:
        raise incomplete_pixel_data(
            f"it holds {len(value)} bytes where Rows, Columns and Bits Allocated need {expected}"
        )

