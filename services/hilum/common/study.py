"""What Hilum knows about a stored study: the typed record every stage reads from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class InstanceInfo:
    """One stored DICOM instance (image) of a study."""

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
    object_key: str  # key in the object store


@dataclass(frozen=True)
class PatientInfo:
    """Patient demographics as they arrived in the DICOM header (PHI: never logged)."""

    patient_id: str
    issuer: str  # DICOM IssuerOfPatientID; "" when absent
    name: str  # DICOM PN, e.g. "DOE^JANE"
    birth_date: date | None
    sex: str  # DICOM: "M", "F", "O" or ""


@dataclass(frozen=True)
class StudyInfo:
    """A chest radiograph study with its patient and stored instances."""

    study_instance_uid: str
    patient: PatientInfo
    started: datetime | None  # StudyDate + StudyTime
    accession_number: str
    description: str
    instances: tuple[InstanceInfo, ...] = field(default_factory=tuple)
