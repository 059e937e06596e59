"""Hilum's acceptance rules for one incoming DICOM instance: is it a chest radiograph Hilum can read?

Every door calls accept_instance before storing an instance. A RejectedInstance carries a
RejectionCode and a reason a PACS administrator can act on, and never any patient data. Reading the
header is hilum.common.dicom.header's job; this module only judges it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)

from hilum.common.dicom.attributes import codes, integer, printable, raw_value, text, uid
from hilum.common.dicom.header import NotDicom, parse_dataset, read_header
from hilum.common.study import InstanceHeader
from hilum.v1 import ingestion_pb2

# The image storage SOP classes of chest radiographs, and the modality each implies.
SUPPORTED_SOP_CLASSES: dict[str, str] = {
    ComputedRadiographyImageStorage: "CR",
    DigitalXRayImageStorageForPresentation: "DX",
    DigitalXRayImageStorageForProcessing: "DX",
}
SUPPORTED_MODALITIES = ("CR", "DX")

# The chest rule. An instance shows the chest when any of these holds:
#  1. Body Part Examined is one of CHEST_BODY_PARTS;
#  2. Anatomic Region Sequence holds one of CHEST_REGION_CODES;
#  3. both of those are absent or empty, and Study Description or Protocol Name contains one of the
#     words CHEST, THORAX, CXR, LUNG or LUNGS (modalities that send no body part usually name the exam).
CHEST_BODY_PARTS = frozenset({"CHEST", "THORAX", "LUNG"})
CHEST_REGION_CODES = frozenset(
    {
        ("SCT", "816094009"),  # Chest (CID 4009)
        ("SCT", "51185008"),  # Thoracic structure, the chest code of older DICOM editions
        ("SCT", "43799004"),  # Thoracic cavity
        ("SCT", "39607008"),  # Lung
        ("SRT", "T-D3000"),  # the same concepts in the retired SNOMED RT codes
        ("SRT", "T-D3200"),
        ("SRT", "T-28000"),
        ("SNM3", "T-D3000"),
    }
)
_CHEST_WORDS = re.compile(r"\b(CHEST|THORAX|CXR|LUNGS?)\b", re.IGNORECASE)

SUPPORTED_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
_ACCEPTS = "Hilum accepts chest radiographs (CR, DX)"


class RejectedInstance(Exception):
    """An instance Hilum does not accept: a RejectionCode and a reason without patient data."""

    def __init__(self, code: ingestion_pb2.RejectionCode.ValueType, reason: str) -> None:
        """code: an ingestion_pb2.RejectionCode value; reason: one sentence for a PACS administrator."""
        super().__init__(reason)
        self.code = code
        self.reason = reason


def accept_instance(content: bytes) -> InstanceHeader:
    """The header of content when it is a single-frame greyscale chest radiograph Hilum can read.

    content: a DICOM Part 10 file, or a bare dataset without preamble and file meta.
    Returns the header with the judged modality ("CR" or "DX") and body part ("CHEST" when the chest is
    judged from codes or text); its instance has object_key "". Raises RejectedInstance on the first
    check that fails, in this order: readable DICOM, UIDs, modality, chest, pixel data, pixel format.
    """
    try:
        ds = parse_dataset(content)
    except NotDicom as error:
        raise RejectedInstance(ingestion_pb2.REJECTION_CODE_NOT_DICOM, str(error)) from error
    header = read_header(ds)
    instance = header.instance
    for value, name in (
        (instance.sop_class_uid, "SOP Class UID"),
        (instance.sop_instance_uid, "SOP Instance UID"),
        (header.study_instance_uid, "Study Instance UID"),
        (instance.series_instance_uid, "Series Instance UID"),
    ):
        if not value:
            raise RejectedInstance(
                ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE,
                f"{name} is missing or is not a valid UID: every instance needs one",
            )
    modality = _modality(ds, instance.sop_class_uid)
    body_part = _chest_body_part(ds)
    _check_pixel_data(ds)
    _check_pixel_format(ds)
    return replace(header, body_part=body_part, instance=replace(instance, modality=modality))


def _modality(ds: Dataset, sop_class_uid: str) -> str:
    """The modality, CR or DX, from the Modality attribute or else the SOP class; others are rejected."""
    modality = text(ds, "Modality").upper()
    if modality in SUPPORTED_MODALITIES:
        return modality
    if sop_class_uid in SUPPORTED_SOP_CLASSES:
        return SUPPORTED_SOP_CLASSES[sop_class_uid]
    if modality:
        reason = f"Modality {printable(modality)} is not supported: {_ACCEPTS}"
    else:
        reason = f"SOP Class {UID(sop_class_uid).name} without a Modality is not supported: {_ACCEPTS}"
    raise RejectedInstance(ingestion_pb2.REJECTION_CODE_UNSUPPORTED_MODALITY, reason)


def _chest_body_part(ds: Dataset) -> str:
    """The body part of a chest instance, by the chest rule above; other body parts are rejected."""
    body_part = text(ds, "BodyPartExamined").upper()
    region_codes = codes(ds, "AnatomicRegionSequence")
    if body_part in CHEST_BODY_PARTS:
        return body_part
    if any(code in CHEST_REGION_CODES for code in region_codes):
        return "CHEST"
    if not body_part and not region_codes:
        if _CHEST_WORDS.search(text(ds, "StudyDescription")) or _CHEST_WORDS.search(text(ds, "ProtocolName")):
            return "CHEST"
        reason = (
            "The instance does not identify the chest: Body Part Examined and Anatomic Region Sequence "
            "are absent, and neither Study Description nor Protocol Name names a chest exam"
        )
    elif body_part:
        reason = f"Body part {printable(body_part)} is not supported: Hilum accepts chest radiographs only"
    else:
        reason = "Anatomic Region Sequence does not code the chest: Hilum accepts chest radiographs only"
    raise RejectedInstance(ingestion_pb2.REJECTION_CODE_NOT_CHEST, reason)


def _check_pixel_data(ds: Dataset) -> None:
    """Reject an instance without Pixel Data, or with an empty one."""
    if not raw_value(ds, "PixelData"):
        raise RejectedInstance(
            ingestion_pb2.REJECTION_CODE_NO_PIXEL_DATA,
            "The instance has no Pixel Data (7FE0,0010): Hilum needs the image itself",
        )


def _check_pixel_format(ds: Dataset) -> None:
    """Require one frame of 1-sample greyscale with 8 to 16 bits stored, and all of its uncompressed pixels."""
    photometric = text(ds, "PhotometricInterpretation").upper()
    if not photometric:
        raise _missing("Photometric Interpretation")
    rows = _required_count(ds, "Rows", "Rows")
    columns = _required_count(ds, "Columns", "Columns")
    bits_allocated = _required_count(ds, "BitsAllocated", "Bits Allocated")
    bits_stored = _required_count(ds, "BitsStored", "Bits Stored")

    unsupported = ingestion_pb2.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT
    samples = integer(ds, "SamplesPerPixel")
    if photometric not in SUPPORTED_PHOTOMETRIC or samples not in (None, 1):
        raise RejectedInstance(
            unsupported,
            f"Photometric Interpretation {printable(photometric)} is not supported: "
            "Hilum reads greyscale images (MONOCHROME1, MONOCHROME2)",
        )
    frames = integer(ds, "NumberOfFrames") or 1
    if frames != 1:
        raise RejectedInstance(
            unsupported,
            f"Multi-frame images ({frames} frames) are not supported: Hilum reads single-frame images",
        )
    if bits_allocated not in (8, 16) or not 8 <= bits_stored <= bits_allocated:
        raise RejectedInstance(
            unsupported,
            f"{bits_stored} bits stored in {bits_allocated} allocated is not supported: "
            "Hilum reads 8 to 16 bits stored in 8 or 16 allocated",
        )
    _check_pixel_length(ds, rows * columns * bits_allocated // 8)


def _required_count(ds: Dataset, keyword: str, name: str) -> int:
    """A positive integer attribute the image cannot be read without."""
    value = integer(ds, keyword)
    if value is None or value <= 0:
        raise _missing(name)
    return value


def _missing(name: str) -> RejectedInstance:
    """The rejection for a pixel description attribute that is absent or invalid."""
    return RejectedInstance(
        ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE,
        f"{name} is missing or invalid: it is needed to read the image",
    )


def _check_pixel_length(ds: Dataset, expected: int) -> None:
    """Reject uncompressed Pixel Data shorter than the image needs (a truncated transfer).

    Only when the transfer syntax is known and uncompressed: compressed frames, and bare datasets
    sent without file meta, are checked when the image is decoded (hilum.common.dicom.pixels).
    """
    file_meta = getattr(ds, "file_meta", None)
    transfer_syntax = uid(file_meta, "TransferSyntaxUID") if isinstance(file_meta, Dataset) else ""
    if not transfer_syntax or UID(transfer_syntax).is_encapsulated:
        return
    pixel_data = raw_value(ds, "PixelData")
    if isinstance(pixel_data, bytes) and len(pixel_data) < expected:
        raise RejectedInstance(
            ingestion_pb2.REJECTION_CODE_NO_PIXEL_DATA,
            f"Pixel Data is incomplete: {len(pixel_data)} bytes where Rows, Columns and Bits Allocated "
            f"need {expected}",
        )
