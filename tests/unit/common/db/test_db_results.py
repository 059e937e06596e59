"""Stage results per (study, model version): findings stored once, reports looked up and counted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import results
from hilum.common.db.models import ReportRow
from hilum.common.study import PatientInfo
from hilum.v1 import messages_pb2
from tests.helpers import record_study

PATIENT = PatientInfo(patient_id="P1", issuer="", name="", birth_date=None, sex="")


def _findings(uid: str, version: str, probability: float) -> messages_pb2.StudyFindings:
    return messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid),
        model=messages_pb2.ModelInfo(name="cxr_findings", version=version, demo_weights=True),
        findings=[messages_pb2.Finding(code="effusion", probability=probability)],
    )


def test_findings_are_stored_once_per_model_version(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "1.1", PATIENT, datetime(2025, 1, 1))
    with sqlite_sessions.begin() as session:
        first = results.save_findings(session, _findings("1.1", "v1", 0.25))
        repeat = results.save_findings(session, _findings("1.1", "v1", 0.75))  # a redelivery computed anew
        other = results.save_findings(session, _findings("1.1", "v2", 0.5))
    assert repeat == first and repeat.findings[0].probability == 0.25
    assert other.model.version == "v2"
    with sqlite_sessions() as session:
        loaded = results.load_findings(session, "1.1", "v1")
        assert loaded is not None and loaded.findings[0].probability == 0.25
        assert results.load_findings(session, "1.1", "v3") is None


def test_reports_by_version_and_latest(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "2.1", PATIENT, datetime(2025, 1, 1))
    with sqlite_sessions.begin() as session:
        for version in ("v1", "v2"):
            session.add(ReportRow(study_instance_uid="2.1", model_version=version, diagnostic_report_id=version,
                                  bundle_json="{}", bundle_path=f"/out/{version}.json", payload=b""))
    with sqlite_sessions() as session:
        v1 = results.load_report(session, "2.1", "v1")
        latest = results.latest_report(session, "2.1")
        assert v1 is not None and v1.diagnostic_report_id == "v1"
        assert latest is not None and latest.model_version == "v2"
        assert results.count_reports(session, "2.1") == 2 and results.count_reports(session, "9.9") == 0
        assert results.load_report(session, "2.1", "v9") is None and results.latest_report(session, "9.9") is None
