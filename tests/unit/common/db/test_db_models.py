"""The tables' own guarantees: one result per (study, model version), and instances go with their study."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db.models import FindingsRow, InstanceRow, ReportRow, StudyRow
from hilum.common.study import PatientInfo
from tests.helpers import record_study

PATIENT = PatientInfo(patient_id="P1", issuer="", name="", birth_date=None, sex="")


def test_a_second_findings_row_for_the_same_study_and_version_is_refused(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    record_study(sqlite_sessions, "1.1", PATIENT, datetime(2025, 1, 1))
    row = {"study_instance_uid": "1.1", "model_name": "m", "model_version": "v1", "demo_weights": True,
           "payload": b""}
    with sqlite_sessions.begin() as session:
        session.add(FindingsRow(**row))
    with pytest.raises(IntegrityError), sqlite_sessions.begin() as session:
        session.add(FindingsRow(**row))


def test_a_second_report_for_the_same_study_and_version_is_refused(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "2.1", PATIENT, datetime(2025, 1, 1))
    row = {"study_instance_uid": "2.1", "model_version": "v1", "diagnostic_report_id": "r", "bundle_json": "{}",
           "bundle_path": "/b.json", "payload": b""}
    with sqlite_sessions.begin() as session:
        session.add(ReportRow(**row))
    with pytest.raises(IntegrityError), sqlite_sessions.begin() as session:
        session.add(ReportRow(**row))


def test_results_need_a_stored_study_and_instances_go_with_it(sqlite_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), sqlite_sessions.begin() as session:
        session.add(FindingsRow(study_instance_uid="9.9", model_name="m", model_version="v1", demo_weights=True,
                                payload=b""))
    record_study(sqlite_sessions, "3.1", PATIENT, None, view_positions=("PA",))
    with sqlite_sessions.begin() as session:
        study = session.get(StudyRow, "3.1")
        assert study is not None and study.received_at.year >= 2025 and study.imaging_study == ""
        session.delete(study)
    with sqlite_sessions() as session:
        assert session.scalars(select(InstanceRow)).all() == []
