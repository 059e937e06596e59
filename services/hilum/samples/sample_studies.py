"""The fictional patients and chest DX studies Hilum ships as samples: who, when, which view, which seed.

Specs only (no DICOM, no pixels), so tests and benchmarks can vary one field with dataclasses.replace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from hilum.samples.chest_views import VIEW_GEOMETRY, ViewPosition
from hilum.samples.identifiers import make_accession_number, make_uid

ISSUER = "HILUM-SYNTHETIC"


@dataclass(frozen=True)
class SyntheticStudy:
    """One fictional single-image chest DX study: who, when, which view, how large, and its seed.

    label: a file-name-safe name for the study that carries no patient data, e.g. "patient-a-current".
    """

    patient_id: str
    patient_name: str  # DICOM PN, e.g. "SYNTHETIC^ADA"
    birth_date: date
    sex: str  # "M", "F" or "O"
    study_started: datetime
    view_position: ViewPosition
    seed: int
    label: str
    rows: int = 2500
    columns: int = 2000
    issuer: str = ISSUER

    @property
    def study_description(self) -> str:
        """Study Description for the view, e.g. "XR CHEST PA"."""
        return VIEW_GEOMETRY[self.view_position].description

    @property
    def accession_number(self) -> str:
        """A deterministic 11-character accession number derived from the seed."""
        return make_accession_number(self.seed)

    @property
    def study_instance_uid(self) -> str:
        """Study Instance UID, deterministic in the seed."""
        return make_uid(self.seed, "study")

    @property
    def series_instance_uid(self) -> str:
        """Series Instance UID, deterministic in the seed."""
        return make_uid(self.seed, "series")

    @property
    def sop_instance_uid(self) -> str:
        """SOP Instance UID of the study's one image, deterministic in the seed."""
        return make_uid(self.seed, "instance")


@dataclass(frozen=True)
class SyntheticPatient:
    """A fictional patient (ID, DICOM PN name, birth date, sex), so that their studies share one identity."""

    patient_id: str
    name: str  # DICOM PN, e.g. "SYNTHETIC^ADA"
    birth_date: date
    sex: str  # "M", "F" or "O"

    def study(
        self, started: datetime, view: ViewPosition, seed: int, label: str, rows: int = 2500, columns: int = 2000
    ) -> SyntheticStudy:
        """A study of this patient started at `started`, rows x columns pixels, deterministic in the seed."""
        return SyntheticStudy(
            patient_id=self.patient_id,
            patient_name=self.name,
            birth_date=self.birth_date,
            sex=self.sex,
            study_started=started,
            view_position=view,
            seed=seed,
            label=label,
            rows=rows,
            columns=columns,
        )


_ADA = SyntheticPatient("SYN-000101", "SYNTHETIC^ADA", date(1956, 3, 14), "F")
_BORIS = SyntheticPatient("SYN-000202", "SYNTHETIC^BORIS", date(1971, 11, 2), "M")
_CLARA = SyntheticPatient("SYN-000303", "SYNTHETIC^CLARA", date(1948, 6, 30), "F")

SAMPLE_STUDIES: tuple[SyntheticStudy, ...] = (
    # Patient A: a prior PA study and the current one thirteen months later.
    _ADA.study(datetime(2024, 1, 22, 9, 41, 7), ViewPosition.PA, seed=101, label="patient-a-prior"),
    _ADA.study(datetime(2025, 2, 18, 10, 5, 32), ViewPosition.PA, seed=102, label="patient-a-current"),
    # Patient B: a single outpatient PA study.
    _BORIS.study(datetime(2025, 2, 18, 11, 17, 0), ViewPosition.PA, seed=201, label="patient-b-current"),
    # Patient C: a portable AP study, as taken at the bedside.
    _CLARA.study(datetime(2025, 2, 18, 3, 52, 45), ViewPosition.AP, seed=301, label="patient-c-portable"),
)
