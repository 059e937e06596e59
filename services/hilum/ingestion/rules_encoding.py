"""Acceptance rules 1 and 2: the bytes are readable DICOM, in a transfer syntax Hilum can decode.

NOT_DICOM when the content is no DICOM object or is cut short in its header; UNSUPPORTED_TRANSFER_SYNTAX
when the transfer syntax is unnamed, not one the installed pixel decoders read, or not the one the
dataset is encoded in. The element helpers here are shared with the pixel data rules.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from hilum.common.dicom.attributes import text, uid
from hilum.common.dicom.header import InflatesTooLarge, NotDicom, parse_dataset
from hilum.ingestion.rejection import RejectedInstance
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode
PIXEL_DATA = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF

# 1. Readable DICOM


def parse(content: bytes) -> Dataset:
    """The dataset in content; NOT_DICOM when it is none, or its header is cut short."""
    try:
        ds = parse_dataset(content)
    except InflatesTooLarge as error:
        raise RejectedInstance(Code.REJECTION_CODE_NOT_DICOM, str(error)) from error
    except NotDicom as error:
        if _header_is_whole(content):
            # pydicom gives up on the whole file when encapsulated Pixel Data runs past its end.
            raise incomplete_pixel_data("its encapsulated frames end before their sequence delimiter") from error
        raise RejectedInstance(Code.REJECTION_CODE_NOT_DICOM, str(error)) from error
    last = raw_element(ds, max(ds.keys()))
    if last is not None and last.tag != PIXEL_DATA and _is_cut_short(last):
        raise RejectedInstance(
            Code.REJECTION_CODE_NOT_DICOM,
            "The content is truncated: it ends inside an attribute of its header, before the image",
        )
    return ds


def _header_is_whole(content: bytes) -> bool:
    """Whether the header before Pixel Data parses into a DICOM object."""
    try:
        parse_dataset(content, stop_before_pixels=True)
    except NotDicom:
        return False
    return True


def raw_element(ds: Dataset, tag: int) -> Any:
    """The element as read (a RawDataElement until something converts it), or None."""
    try:
        return ds.get_item(tag)
    except Exception:  # a damaged element can fail on any access
        return None


def _is_cut_short(element: Any) -> bool:
    """Whether an element read from a file holds fewer bytes than its length says (the file ended)."""
    if not isinstance(element, RawDataElement) or element.length == _UNDEFINED_LENGTH:
        return False
    return isinstance(element.value, bytes) and len(element.value) < element.length


# 2. Transfer syntax


def transfer_syntax(ds: Dataset, part10: bool) -> UID:
    """The transfer syntax the dataset is encoded in, when the installed pixel decoders read it.

    A Part 10 file names it in its file meta; a bare dataset is read in its own (uncompressed) encoding.
    """
    unsupported = Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX
    file_meta = getattr(ds, "file_meta", None)
    if not isinstance(file_meta, Dataset):
        file_meta = Dataset()
    if text(file_meta, "TransferSyntaxUID").rstrip("\0"):
        syntax = UID(uid(file_meta, "TransferSyntaxUID"))
        if not syntax:
            raise RejectedInstance(unsupported, "The Transfer Syntax UID in the file meta information is not a UID")
        try:
            readable = get_decoder(syntax).is_available
        except Exception:  # NotImplementedError: no decoder exists for this UID at all
            readable = False
        if not readable:
            raise RejectedInstance(
                unsupported,
                f"Transfer syntax {syntax.name} is not supported: Hilum reads uncompressed, deflated, RLE, "
                "JPEG, JPEG-LS and JPEG 2000 images",
            )
        if _read_encoding(ds) != (syntax.is_implicit_VR, syntax.is_little_endian):
            # pydicom guessed its way through; the stored object would mislead every other reader.
            raise RejectedInstance(
                unsupported, f"The dataset is not encoded as its file meta's transfer syntax ({syntax.name}) says"
            )
        return syntax
    if part10:
        raise RejectedInstance(unsupported, "The file meta information names no Transfer Syntax UID (0002,0010)")
    pixel_data = raw_element(ds, PIXEL_DATA)
    implicit, little_endian = _read_encoding(ds)
    if (pixel_data is not None and is_encapsulated(pixel_data)) or little_endian is None:
        raise RejectedInstance(
            unsupported,
            "The dataset has compressed Pixel Data but no file meta information to name its transfer syntax",
        )
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little_endian else ExplicitVRBigEndian


def _read_encoding(ds: Dataset) -> tuple[bool | None, bool | None]:
    """(implicit VR, little endian) as the dataset was actually read.

    pydicom records the encoding it found on each element still as read, while Dataset.original_encoding
    repeats what the file meta said even when pydicom had to guess otherwise.
    """
    for tag in ds.keys():
        element = raw_element(ds, tag)
        if isinstance(element, RawDataElement):
            return element.is_implicit_VR, element.is_little_endian
    return ds.original_encoding


def is_encapsulated(element: Any) -> bool:
    """Whether Pixel Data was sent encapsulated (undefined length, fragments), as compressed frames are."""
    if isinstance(element, RawDataElement):
        return bool(element.length == _UNDEFINED_LENGTH)
    return bool(getattr(element, "is_undefined_length", False))



def incomplete_pixel_data(why: str) -> RejectedInstance:
    return RejectedInstance(Code.REJECTION_CODE_NO_PIXEL_DATA, f"Pixel Data is incomplete: {why}")
