"""What a prior source answers: the patient's most recent earlier chest radiograph, where it was found and why.

A candidate names a patient's study and may carry its report text: it is PHI, never to be logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from hilum.common.study import StudyInfo


@dataclass(frozen=True)
class PriorReport:
    """The radiologist's report of a prior, as the source holds it."""

    identifier: str  # the DiagnosticReport's identifier as "system|value"; "" when it has none
    status: str  # FHIR DiagnosticReport.status, e.g. "final", "amended"
    conclusion: str  # DiagnosticReport.conclusion (the impression); "" when absent
    text: str  # the presentedForm text/plain, decoded (FINDINGS, IMPRESSION, ...); "" when absent


@dataclass(frozen=True)
class PriorCandidate:
    """A prior study found by one source, with the reason it was chosen and, where the source has it, its report."""

    study_instance_uid: str
    # When it started: a datetime (naive local time as DICOM gives it, or with an offset as FHIR gives it), or
    # only the day where that is all the source knows.
    started: datetime | date
    modality: str  # DICOM modality, "CR" or "DX"
    source: str  # the source that found it: "store" or "fhir"
    # Why this study, e.g. "most recent CR/DX ImagingStudy before ... of the Patient with the study's MRN in <system>,
    # on <server>": never the MRN itself, since the reason travels in the comparison to reporting.
    reason: str
    report: PriorReport | None = None

    @property
    def study_date(self) -> str:
        """The day it started as a DICOM DA ("YYYYMMDD"), as PriorComparison.prior.study_date carries it."""
        return self.started.strftime("%Y%m%d")


class PriorSource(Protocol):
    """One place a prior can be found: Hilum's own store, a hospital FHIR server, later a PACS."""

    name: str  # "store", "fhir": what PriorCandidate.source says

    def find_prior(self, study: StudyInfo) -> PriorCandidate | None:
        """The same patient's most recent chest radiograph that started before `study`, or None.

        Raises TransientError (retry later) or PermanentError (misconfigured or refused) when the source fails.
        """
        ...
