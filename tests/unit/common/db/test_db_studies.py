"""Studies and instances in the database: recorded once, typed back, states moved by the rules, priors found."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import studies
from hilum.common.study import PatientInfo
from tests.helpers import instance_info, record_study, study_header

JANE = PatientInfo(patient_id="P1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")


def test_a_study_is_created_once_and_read_back_typed(sqlite_sessions: sessionmaker[Session]) -> None:
    started = datetime(2025, 2, 18, 10, 5)
    record_study(sqlite_sessions, "1.1", JANE, started, view_positions=("PA", "LL"))
    with sqlite_sessions.begin() as session:
        other = dataclasses.replace(study_header("1.1", JANE, started), study_description="changed later")
        studies.ensure_study(session, other)  # the first instance's header made the study
    with sqlite_sessions() as session:
        info = studies.require_study_info(session, "1.1")
        assert studies.count_instances(session, "1.1") == 2
        assert studies.stored_instance(session, "1.1.2") is not None
        assert studies.stored_instance(session, "1.1.3") is None
    assert info.patient == JANE and info.started == started and info.description == "XR CHEST PA"
    assert [i.view_position for i in info.instances] == ["PA", "LL"]
    assert info.instances[0] == instance_info("1.1", 1, "PA")


def test_unknown_study(sqlite_sessions: sessionmaker[Session]) -> None:
    with sqlite_sessions.begin() as session:
        assert studies.get_study(session, "9.9") is None and studies.study_info(session, "9.9") is None
        with pytest.raises(studies.StudyNotFound):
            studies.require_study(session, "9.9")
        with pytest.raises(studies.StudyNotFound):
            studies.advance(session, "9.9", study_state.INFERRED)
        studies.fail(session, "9.9", "no such study")  # a dead letter for a study never stored


def test_state_moves_by_the_rules(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "2.1", JANE, None)
    with sqlite_sessions.begin() as session:
        studies.advance(session, "2.1", study_state.INFERRED)
        studies.fail(session, "2.1", "priors: retries exhausted")
        studies.advance(session, "2.1", study_state.COMPARED)
        row = studies.require_study(session, "2.1")
        assert studies.state(row) == study_state.FAILED and row.error == "priors: retries exhausted"
        studies.restart(session, "2.1")
        assert studies.state(row) == study_state.RECEIVED and row.error == ""
        studies.advance(session, "2.1", study_state.REPORTED)
        studies.fail(session, "2.1", "late failure")
        assert studies.state(row) == study_state.REPORTED and row.error == ""


def test_imaging_study_is_kept(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "3.1", JANE, None)
    with sqlite_sessions.begin() as session:
        studies.set_imaging_study(session, "3.1", '{"resourceType": "ImagingStudy"}')
    with sqlite_sessions() as session:
        assert studies.require_study(session, "3.1").imaging_study.startswith('{"resourceType"')


def test_prior_is_the_latest_earlier_study_of_the_same_patient(sqlite_sessions: sessionmaker[Session]) -> None:
    now = datetime(2025, 2, 18, 10, 0)
    record_study(sqlite_sessions, "4.1", JANE, now - timedelta(days=400))
    record_study(sqlite_sessions, "4.2", JANE, now - timedelta(days=30))
    record_study(sqlite_sessions, "4.3", JANE, now)
    record_study(sqlite_sessions, "4.4", dataclasses.replace(JANE, issuer="OTHER"), now - timedelta(days=1))
    record_study(sqlite_sessions, "4.5", JANE, None)
    with sqlite_sessions() as session:
        prior = studies.find_prior(session, studies.require_study_info(session, "4.3"))
        assert prior is not None and prior.study_instance_uid == "4.2"
        assert studies.find_prior(session, studies.require_study_info(session, "4.1")) is None
        assert studies.find_prior(session, studies.require_study_info(session, "4.5")) is None  # no date


def test_received_since_uses_the_given_clock(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "5.1", JANE, None)
    with sqlite_sessions() as session:
        row = studies.require_study(session, "5.1")
        now = datetime.now(UTC)
        assert 0 <= studies.received_since(row, now) < 60
        assert studies.received_since(row, now + timedelta(hours=1)) >= 3600


def test_the_view_of_a_stored_object_is_its_instances(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "3.1", PatientInfo("P9", "", "", None, ""), datetime(2025, 1, 1),
                 view_positions=("ap", "LATERAL"))
    with sqlite_sessions() as session:
        assert studies.view_of_object(session, "dicom/3.1/1.dcm") == "AP"
        assert studies.view_of_object(session, "dicom/3.1/2.dcm") == "LATERAL"
        assert studies.view_of_object(session, "dicom/9.9/1.dcm") == ""
