"""Sample study specs: three fictional patients, one with a prior a year earlier, one portable AP."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

from hilum.samples.chest_views import ViewPosition
from hilum.samples.identifiers import make_uid
from hilum.samples.sample_studies import ISSUER, SAMPLE_STUDIES, SyntheticPatient


def test_sample_set_has_three_patients_a_prior_and_a_portable_ap() -> None:
    by_patient: dict[str, list[datetime]] = {}
    for spec in SAMPLE_STUDIES:
        by_patient.setdefault(spec.patient_id, []).append(spec.study_started)
    assert len(by_patient) == 3
    assert sorted(len(dates) for dates in by_patient.values()) == [1, 1, 2]
    assert [spec.view_position for spec in SAMPLE_STUDIES].count(ViewPosition.AP) == 1
    assert len({spec.label for spec in SAMPLE_STUDIES}) == 4


def test_prior_is_about_a_year_before_the_current_study() -> None:
    prior, current = SAMPLE_STUDIES[0], SAMPLE_STUDIES[1]
    assert (prior.label, current.label) == ("patient-a-prior", "patient-a-current")
    assert 330 <= (current.study_started - prior.study_started).days <= 400
    assert (prior.patient_id, prior.patient_name, prior.birth_date) == (
        current.patient_id,
        current.patient_name,
        current.birth_date,
    )
    assert prior.study_instance_uid != current.study_instance_uid


def test_every_sample_is_fictional_and_full_size() -> None:
    for spec in SAMPLE_STUDIES:
        assert spec.patient_name.startswith("SYNTHETIC^")
        assert spec.patient_id.startswith("SYN-")
        assert spec.issuer == ISSUER == "HILUM-SYNTHETIC"
        assert (spec.rows, spec.columns) == (2500, 2000)


def test_patient_study_carries_the_identity_and_the_arguments() -> None:
    patient = SyntheticPatient("SYN-1", "SYNTHETIC^EVE", date(1990, 1, 2), "F")
    spec = patient.study(datetime(2025, 3, 4, 5, 6, 7), ViewPosition.LL, seed=5, label="eve", rows=64, columns=48)
    assert (spec.patient_id, spec.patient_name, spec.birth_date, spec.sex) == (
        "SYN-1",
        "SYNTHETIC^EVE",
        date(1990, 1, 2),
        "F",
    )
    assert (spec.view_position, spec.seed, spec.label, spec.rows, spec.columns) == (ViewPosition.LL, 5, "eve", 64, 48)
    assert spec.study_description == "XR CHEST LATERAL"


def test_identifiers_follow_the_seed() -> None:
    spec = SAMPLE_STUDIES[0]
    assert spec.study_instance_uid == make_uid(101, "study")
    assert spec.series_instance_uid == make_uid(101, "series")
    assert spec.sop_instance_uid == make_uid(101, "instance")
    assert spec.accession_number == "SYN62370258"
    renamed = dataclasses.replace(spec, patient_id="BENCH-00001", label="bench")
    assert renamed.study_instance_uid == spec.study_instance_uid
    assert dataclasses.replace(spec, seed=7).study_instance_uid != spec.study_instance_uid
