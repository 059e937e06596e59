"""A prior candidate is a frozen record whose study date reads as a DICOM DA, whatever precision the source gave."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from hilum.priors.candidate import PriorCandidate, PriorReport


def _candidate(started: datetime | date) -> PriorCandidate:
    return PriorCandidate(study_instance_uid="2.25.1", started=started, modality="DX", source="fhir",
                          reason="most recent CR/DX ImagingStudy", report=PriorReport("urn:r|1", "final", "", ""))


@pytest.mark.parametrize("started", [datetime(2026, 6, 1, 23, 30), datetime(2026, 6, 1, 9, tzinfo=UTC),
                                     date(2026, 6, 1)])
def test_the_study_date_is_the_day_it_started(started: datetime | date) -> None:
    assert _candidate(started).study_date == "20260601"


def test_a_candidate_cannot_be_changed() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _candidate(date(2026, 6, 1)).study_instance_uid = "2.25.2"  # type: ignore[misc]
