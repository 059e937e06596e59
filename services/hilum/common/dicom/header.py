"""DICOM headers: bytes parsed into a pydicom Dataset, and a Dataset read into Hilum's InstanceHeader.

The header is read as sent: whether Hilum accepts the instance is ingestion's decision
(hilum.ingestion.acceptance), and its pixels are decoded by hilum.common.dicom.pixels.
"""

from __future__ import annotations

import zlib
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset

from hilum.common.dicom.attributes import codes, date_of, datetime_of, floats, integer, text, uid
from hilum.common.study import InstanceHeader, InstanceInfo, PatientInfo

_PREAMBLE_LENGTH = 128
# A dataset without the Part 10 preamble starts with its lowest group: 0002 (file meta) or 0008.
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00")
_IDENTIFYING_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# The dataset UIDs that the file meta information repeats (PS3.10 7.1), for datasets that lack them.
_FILE_META_KEYWORDS = {"SOPClassUID": "MediaStorageSOPClassUID", "SOPInstanceUID": "MediaStorageSOPInstanceUID"}
_SEXES = ("M", "F", "O")
# A deflated dataset is inflated whole by pydicom; beyond this it is refused unread (a "zip bomb"). The
# largest radiograph Hilum accepts (50 megapixels of 16 bits) inflates to about 100 MiB.
MAX_INFLATED_BYTES = 256 * 2**20
_DEFLATED = b"1.2.840.10008.1.2.1.99"
_INFLATE_CHUNK = 16 * 2**20  # the inflated size is counted in chunks of this size, never held whole
# Explicit VRs with a 4-byte length after 2 reserved bytes (PS3.5 7.1.2); the others have a 2-byte length.
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})


class NotDicom(ValueError):
    """Content that is not a DICOM object, or one too damaged to read; the message names no patient data."""


class InflatesTooLarge(NotDicom):
    """A deflated dataset that inflates beyond MAX_INFLATED_BYTES: refused before pydicom inflates it."""


def parse_dataset(content: bytes, stop_before_pixels: bool = False) -> Dataset:
    """The dataset in content: a DICOM Part 10 file, or a bare dataset without preamble and file meta.

    A bare dataset gets an empty file_meta; its encoding is in Dataset.original_encoding.
    stop_before_pixels: read the header only, up to Pixel Data (pydicom reads nothing at all from a file
    whose encapsulated Pixel Data is cut short, so this tells such a file from one that is not DICOM).
    Raises NotDicom for anything else, or for a DICOM object too damaged to parse.
    """
    part10 = content[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4] == b"DICM"
    if not part10 and content[:2] not in _RAW_DATASET_STARTS:
        raise NotDicom(
            "The content is not DICOM: it has no DICM prefix after the 128-byte preamble "
            "and does not begin like a DICOM dataset"
        )
    _check_inflated_size(content, _PREAMBLE_LENGTH + 4 if part10 else 0)
    try:
        ds = dcmread(BytesIO(content), force=not part10, stop_before_pixels=stop_before_pixels)
    except Exception as error:  # pydicom raises many exception types for damaged input
        raise NotDicom("The content could not be read as DICOM: it is truncated or damaged") from error
    # Damaged bytes can still parse into a few stray elements; a DICOM object always names itself.
    if not any(keyword in ds for keyword in _IDENTIFYING_KEYWORDS):
        raise NotDicom(
            "The content holds no DICOM object: it has none of the SOP, study or series UIDs, "
            "so it is damaged or not DICOM"
        )
    return ds


def _check_inflated_size(content: bytes, meta_start: int) -> None:
    """Raise InflatesTooLarge when the file meta names the deflated transfer syntax and the dataset after
    it inflates beyond MAX_INFLATED_BYTES."""
    meta_end = _file_meta_end(content, meta_start)
    if _DEFLATED not in content[meta_start:meta_end]:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending, inflated = content[meta_end:], 0
    try:
        while True:
            chunk = len(inflater.decompress(pending, _INFLATE_CHUNK))
            inflated += chunk
            if inflated > MAX_INFLATED_BYTES:
                raise InflatesTooLarge(
                    f"The content could not be read as DICOM: its deflated dataset inflates to more than "
                    f"{MAX_INFLATED_BYTES // 2**20} MiB"
                )
            pending = inflater.unconsumed_tail
            if chunk < _INFLATE_CHUNK and not pending:  # a full chunk may leave output still to come
                return
    except zlib.error:
        return  # not deflate data after all: pydicom says what it is


def _file_meta_end(content: bytes, start: int) -> int:
    """Where the group 0002 elements starting at `start` end (explicit VR little endian, PS3.10 7.1)."""
    position = start
    while content[position : position + 2] == b"\x02\x00" and position + 8 <= len(content):
        if content[position + 4 : position + 6] in _LONG_VRS:
            position += 12 + int.from_bytes(content[position + 8 : position + 12], "little")
        else:
            position += 8 + int.from_bytes(content[position + 6 : position + 8], "little")
    return position


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
        placer_order_number=text(ds, "PlacerOrderNumberImagingServiceRequest"),
        body_part=text(ds, "BodyPartExamined").upper(),
        instance=InstanceInfo(
            sop_instance_uid=dataset_uid(ds, "SOPInstanceUID"),
            sop_class_uid=dataset_uid(ds, "SOPClassUID"),
            series_instance_uid=dataset_uid(ds, "SeriesInstanceUID"),
            series_number=integer(ds, "SeriesNumber"),
            instance_number=integer(ds, "InstanceNumber"),
            modality=text(ds, "Modality").upper(),
            view_position=view_position(ds),
            rows=_count(ds, "Rows"),
            columns=_count(ds, "Columns"),
            pixel_spacing_mm=_detector_spacing(ds),
        ),
    )


# View Position values of the projections Hilum tells apart: frontal ones in order of preference, and laterals.
FRONTAL_VIEWS = ("PA", "AP")
LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL")

# View Code Sequence (CID 4010, DX View) values for the projections a chest radiograph is taken in.
_VIEW_CODES = {
    ("SCT", "272479007"): "PA",  # postero-anterior
    ("SCT", "399348003"): "AP",  # antero-posterior
    ("SCT", "399173006"): "LL",  # left lateral
    ("SCT", "399198007"): "RL",  # right lateral
    ("SCT", "49370004"): "LATERAL",
}


def view_position(ds: Dataset) -> str:
    """The projection, upper case: View Position as sent; else from the View Code Sequence; else "LATERAL"
    when Patient Orientation says the columns run front to back (a lateral); else "" (unknown).
    """
    sent = text(ds, "ViewPosition").upper()
    if sent:
        return sent
    for code in codes(ds, "ViewCodeSequence"):
        if code in _VIEW_CODES:
            return _VIEW_CODES[code]
    orientation = text(ds, "PatientOrientation").upper().split("\\")
    return "LATERAL" if orientation[0][:1] in ("A", "P") else ""


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
