"""Validation of one incoming DICOM instance: is it a chest radiograph Hilum can read, and what it says.

Ingestion calls validate_instance on every instance before storing it; a RejectedInstance carries
a RejectionCode and a reason a PACS administrator can act on, and never any patient data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)

from hilum.common.dicom.attributes import codes, date_of, datetime_of, floats, integer, raw_value, text, uid
from hilum.common.study import InstanceInfo, PatientInfo
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
_PREAMBLE_LENGTH = 128
# A dataset without the Part 10 preamble starts with its lowest group: 0002 (file meta) or 0008.
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00")
_IDENTIFYING_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")
_ACCEPTS = "Hilum accepts chest radiographs (CR, DX)"


class RejectedInstance(Exception):
    """An instance Hilum does not accept: a RejectionCode and a reason without patient data."""

    def __init__(self, code: ingestion_pb2.RejectionCode.ValueType, reason: str) -> None:
        """code: an ingestion_pb2.RejectionCode value; reason: one sentence for a PACS administrator."""
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ValidatedInstance:
    """What an accepted instance says about its patient, study and image."""

    patient: PatientInfo
    study_instance_uid: str
    study_started: datetime | None  # StudyDate + StudyTime, naive local time; None when no valid date
    accession_number: str
    study_description: str
    body_part: str  # Body Part Examined as sent (upper case), or "CHEST" when judged from codes or text
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    series_number: int | None
    instance_number: int | None
    modality: str  # "CR" or "DX"
    view_position: str  # e.g. "PA", "AP", "LL"; "" when absent
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float] | None  # (row, column) at the detector, mm

    def instance_info(self, object_key: str) -> InstanceInfo:
        """The stored-instance record, once the instance is stored under object_key."""
        return InstanceInfo(
            sop_instance_uid=self.sop_instance_uid,
            sop_class_uid=self.sop_class_uid,
            series_instance_uid=self.series_instance_uid,
            series_number=self.series_number,
            instance_number=self.instance_number,
            modality=self.modality,
            view_position=self.view_position,
            rows=self.rows,
            columns=self.columns,
            pixel_spacing_mm=self.pixel_spacing_mm,
            object_key=object_key,
        )


def validate_instance(content: bytes) -> ValidatedInstance:
    """Check that content is a single-frame greyscale chest radiograph and read its header.

    content: a DICOM Part 10 file, or a bare dataset without preamble and file meta.
    Raises RejectedInstance on the first check that fails, in this order: readable DICOM, UIDs,
    modality, chest, pixel data, pixel format.
    """
    ds = _read(content)
    sop_class_uid = _required_uid(ds, "SOPClassUID", "MediaStorageSOPClassUID", "SOP Class UID")
    sop_instance_uid = _required_uid(ds, "SOPInstanceUID", "MediaStorageSOPInstanceUID", "SOP Instance UID")
    study_instance_uid = _required_uid(ds, "StudyInstanceUID", "", "Study Instance UID")
    series_instance_uid = _required_uid(ds, "SeriesInstanceUID", "", "Series Instance UID")
    modality = _modality(ds, sop_class_uid)
    body_part = _chest_body_part(ds)
    _check_pixel_data(ds)
    rows, columns = _check_pixel_format(ds)
    return ValidatedInstance(
        patient=PatientInfo(
            patient_id=text(ds, "PatientID"),
            issuer=text(ds, "IssuerOfPatientID"),
            name=text(ds, "PatientName"),
            birth_date=date_of(ds, "PatientBirthDate"),
            sex=_sex(text(ds, "PatientSex")),
        ),
        study_instance_uid=study_instance_uid,
        study_started=datetime_of(ds, "StudyDate", "StudyTime"),
        accession_number=text(ds, "AccessionNumber"),
        study_description=text(ds, "StudyDescription"),
        body_part=body_part,
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=sop_class_uid,
        series_instance_uid=series_instance_uid,
        series_number=integer(ds, "SeriesNumber"),
        instance_number=integer(ds, "InstanceNumber"),
        modality=modality,
        view_position=text(ds, "ViewPosition").upper(),
        rows=rows,
        columns=columns,
        pixel_spacing_mm=_detector_spacing(ds),
    )


def _read(content: bytes) -> Dataset:
    """Parse a Part 10 file or a bare dataset; anything else is NOT_DICOM."""
    part10 = content[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4] == b"DICM"
    if not part10 and content[:2] not in _RAW_DATASET_STARTS:
        raise RejectedInstance(
            ingestion_pb2.REJECTION_CODE_NOT_DICOM,
            "The content is not DICOM: it has no DICM prefix after the 128-byte preamble "
            "and does not begin like a DICOM dataset",
        )
    try:
        ds = dcmread(BytesIO(content), force=not part10)
    except Exception as error:  # pydicom raises many exception types for damaged input
        raise RejectedInstance(
            ingestion_pb2.REJECTION_CODE_NOT_DICOM,
            "The content could not be read as DICOM: it is truncated or damaged",
        ) from error
    # Damaged bytes can still parse into a few stray elements; a DICOM object always names itself.
    if not any(keyword in ds for keyword in _IDENTIFYING_KEYWORDS):
        raise RejectedInstance(
            ingestion_pb2.REJECTION_CODE_NOT_DICOM,
            "The content holds no DICOM object: it has none of the SOP, study or series UIDs, "
            "so it is damaged or not DICOM",
        )
    return ds


def _required_uid(ds: Dataset, keyword: str, meta_keyword: str, name: str) -> str:
    """A Type 1 UID, taken from the file meta information when the dataset lacks it."""
    value = uid(ds, keyword)
    file_meta = getattr(ds, "file_meta", None)
    if not value and meta_keyword and isinstance(file_meta, Dataset):
        value = uid(file_meta, meta_keyword)
    if not value:
        raise RejectedInstance(
            ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE,
            f"{name} is missing or is not a valid UID: every instance needs one",
        )
    return value


def _modality(ds: Dataset, sop_class_uid: str) -> str:
    """The modality, CR or DX, from the Modality attribute or else the SOP class; others are rejected."""
    modality = text(ds, "Modality").upper()
    if modality in SUPPORTED_MODALITIES:
        return modality
    if sop_class_uid in SUPPORTED_SOP_CLASSES:
        return SUPPORTED_SOP_CLASSES[sop_class_uid]
    if modality:
        reason = f"Modality {_printable(modality)} is not supported: {_ACCEPTS}"
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
        reason = f"Body part {_printable(body_part)} is not supported: Hilum accepts chest radiographs only"
    else:
        reason = "Anatomic Region Sequence does not code the chest: Hilum accepts chest radiographs only"
    raise RejectedInstance(ingestion_pb2.REJECTION_CODE_NOT_CHEST, reason)


def _check_pixel_data(ds: Dataset) -> None:
    """Reject an instance without Pixel Data, or with an empty one."""
    pixel_data = raw_value(ds, "PixelData")
    if not pixel_data:
        raise RejectedInstance(
            ingestion_pb2.REJECTION_CODE_NO_PIXEL_DATA,
            "The instance has no Pixel Data (7FE0,0010): Hilum needs the image itself",
        )


def _check_pixel_format(ds: Dataset) -> tuple[int, int]:
    """Require one frame of 1-sample greyscale with 8 to 16 bits stored; return (rows, columns)."""
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
            f"Photometric Interpretation {_printable(photometric)} is not supported: "
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
        ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE,
        f"{name} is missing or invalid: it is needed to read the image",
    )


def _check_pixel_length(ds: Dataset, expected: int) -> None:
    """Reject uncompressed Pixel Data shorter than the image needs (a truncated transfer).

    Only when the transfer syntax is known and uncompressed: compressed frames, and bare datasets
    sent without file meta, are checked when the image is decoded.
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


def _detector_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing at the detector in mm: Imager Pixel Spacing, else Pixel Spacing (CR)."""
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        values = floats(ds, keyword)
        if len(values) == 2 and values[0] > 0 and values[1] > 0:
            return values[0], values[1]
    return None


def _sex(value: str) -> str:
    """DICOM Patient's Sex: "M", "F", "O", or "" for anything else."""
    value = value.upper()
    return value if value in ("M", "F", "O") else ""


def _printable(value: str) -> str:
    """A code string fit for a reason: upper-case letters, digits, space and underscore only."""
    return value if _CODE_STRING.fullmatch(value) else "(unreadable value)"
