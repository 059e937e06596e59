"""What Hilum knows about a study: the typed records read from DICOM headers and from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

# The DICOM modalities of the radiographs Hilum reads, in the order a search names them: what the doors accept, what
# is pulled from a PACS, and what a prior may be.
RADIOGRAPH_MODALITIES: tuple[str, ...] = ("CR", "DX")


@dataclass(frozen=True)
class InstanceInfo:
    """One DICOM instance (image) of a study, as its header describes it."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    series_number: int | None
    instance_number: int | None
    modality: str  # "DX" or "CR"
    view_position: str  # DICOM ViewPosition, e.g. "PA", "AP", "LL"; "" when absent
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float] | None  # (row, column) spacing at the detector, mm
    object_key: str = ""  # key in the object store; "" until the instance is stored


@dataclass(frozen=True)
class PatientInfo:
    """Patient demographics as they arrived in the DICOM header (PHI: never logged)."""

    patient_id: str
    issuer: str  # DICOM IssuerOfPatientID; "" when absent
    name: str  # DICOM PN, e.g. "DOE^JANE"
    birth_date: date | None
    sex: str  # DICOM: "M", "F", "O" or ""


@dataclass(frozen=True)
class InstanceHeader:
    """What one incoming instance's header says about its patient, study and image."""

    patient: PatientInfo
    study_instance_uid: str
    study_started: datetime | None  # StudyDate + StudyTime, naive local time; None when no valid date
    accession_number: str
    study_description: str
    body_part: str  # Body Part Examined as sent (upper case), or "CHEST" when judged from codes or text
    instance: InstanceInfo  # object_key is "" until the instance is stored
    # The order's Placer Order Number / Imaging Service Request (0040,2016); "" when absent.
    placer_order_number: str = ""


@dataclass(frozen=True)
class StudyInfo:
    """A chest radiograph study with its patient and stored instances."""

    study_instance_uid: str
    patient: PatientInfo
    started: datetime | None  # StudyDate + StudyTime
    accession_number: str
    description: str
    instances: tuple[InstanceInfo, ...] = field(default_factory=tuple)
    placer_order_number: str = ""  # the order this study fulfils, as the placer (EHR) numbers it; "" if unknown
