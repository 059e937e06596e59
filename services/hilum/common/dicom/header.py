"""DICOM headers: bytes parsed into a pydicom Dataset, and a Dataset read into Hilum's InstanceHeader.

The header is read as sent: whether Hilum accepts the instance is ingestion's decision
(hilum.ingestion.acceptance), and its pixels are decoded by hilum.common.dicom.pixels.
"""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset

from hilum.common.dicom.attributes import date_of, datetime_of, floats, integer, text, uid
from hilum.common.study import InstanceHeader, InstanceInfo, PatientInfo

_PREAMBLE_LENGTH = 128
# A dataset without the Part 10 preamble starts with its lowest group: 0002 (file meta) or 0008.
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00")
_IDENTIFYING_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# The dataset UIDs that the file meta information repeats (PS3.10 7.1), for datasets that lack them.
_FILE_META_KEYWORDS = {"SOPClassUID": "MediaStorageSOPClassUID", "SOPInstanceUID": "MediaStorageSOPInstanceUID"}
_SEXES = ("M", "F", "O")


class NotDicom(ValueError):
    """Content that is not a DICOM object, or one too damaged to read; the message names no patient data."""


def parse_dataset(content: bytes) -> Dataset:
    """The dataset in content: a DICOM Part 10 file, or a bare dataset without preamble and file meta.

    A bare dataset gets an empty file_meta; its encoding is in Dataset.original_encoding.
    Raises NotDicom for anything else, or for a DICOM object too damaged to parse.
    """
    part10 = content[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4] == b"DICM"
    if not part10 and content[:2] not in _RAW_DATASET_STARTS:
        raise NotDicom(
            "The content is not DICOM: it has no DICM prefix after the 128-byte preamble "
            "and does not begin like a DICOM dataset"
        )
    try:
        ds = dcmread(BytesIO(content), force=not part10)
    except Exception as error:  # pydicom raises many exception types for damaged input
        raise NotDicom("The content could not be read as DICOM: it is truncated or damaged") from error
    # Damaged bytes can still parse into a few stray elements; a DICOM object always names itself.
    if not any(keyword in ds for keyword in _IDENTIFYING_KEYWORDS):
        raise NotDicom(
            "The content holds no DICOM object: it has none of the SOP, study or series UIDs, "
            "so it is damaged or not DICOM"
        )
    return ds


def read_header(ds: Dataset) -> InstanceHeader:
    """What one instance's header says about its patient, study and image, read defensively.

    Absent or malformed values become "" (text, UIDs), None (dates, numbers, spacing) or 0 (rows,
    columns); nothing here raises. SOP Class and SOP Instance UIDs fall back to the file meta
    information. Modality, View Position and Body Part Examined are as sent, in upper case; the
    returned instance has object_key "".
    """
    return InstanceHeader(
        patient=PatientInfo(
            patient_id=text(ds, "PatientID"),
            issuer=text(ds, "IssuerOfPatientID"),
            name=text(ds, "PatientName"),
            birth_date=date_of(ds, "PatientBirthDate"),
            sex=_sex(text(ds, "PatientSex")),
        ),
        study_instance_uid=dataset_uid(ds, "StudyInstanceUID"),
        study_started=datetime_of(ds, "StudyDate", "StudyTime"),
        accession_number=text(ds, "AccessionNumber"),
        study_description=text(ds, "StudyDescription"),
        body_part=text(ds, "BodyPartExamined").upper(),
        instance=InstanceInfo(
            sop_instance_uid=dataset_uid(ds, "SOPInstanceUID"),
            sop_class_uid=dataset_uid(ds, "SOPClassUID"),
            series_instance_uid=dataset_uid(ds, "SeriesInstanceUID"),
            series_number=integer(ds, "SeriesNumber"),
            instance_number=integer(ds, "InstanceNumber"),
            modality=text(ds, "Modality").upper(),
            view_position=text(ds, "ViewPosition").upper(),
            rows=_count(ds, "Rows"),
            columns=_count(ds, "Columns"),
            pixel_spacing_mm=_detector_spacing(ds),
        ),
    )


def dataset_uid(ds: Dataset, keyword: str) -> str:
    """A UID of the dataset, taken from the file meta information when the dataset lacks it (SOP Class
    and SOP Instance UIDs only); "" when absent or not a valid UID in both.
    """
    value = uid(ds, keyword)
    file_meta = getattr(ds, "file_meta", None)
    if not value and keyword in _FILE_META_KEYWORDS and isinstance(file_meta, Dataset):
        value = uid(file_meta, _FILE_META_KEYWORDS[keyword])
    return value


def _count(ds: Dataset, keyword: str) -> int:
    """A positive integer attribute such as Rows; 0 when absent, malformed or not positive."""
    value = integer(ds, keyword)
    return value if value is not None and value > 0 else 0


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
    return value if value in _SEXES else ""
