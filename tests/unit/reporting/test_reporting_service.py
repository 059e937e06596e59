"""Reporting's core against a real store and Redis: publish once, validate, write the CDS view."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.cds_view import read_latest
from hilum.common.db import deliveries, results, studies
from hilum.common.destinations import Destination
from hilum.common.fhir.validation import validate_bundle
from hilum.common.settings import FhirSection
from hilum.common.study import PatientInfo
from hilum.fhir_api.store import read_current
from hilum.reporting.service import Reporting
from hilum.v1 import messages_pb2
from tests.helpers import demo_comparison, record_study

PATIENT = PatientInfo(patient_id="P7", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")


def _reporting(sessions: sessionmaker[Session], tmp_path: Path, client: redis_lib.Redis) -> Reporting:
    return Reporting(sessions, tmp_path / "out", client, FhirSection(patient_identifier_system="urn:oid:1.2.3.4"),
                     clock=lambda: datetime(2025, 2, 18, 12, 0, tzinfo=UTC))


def _stored_study(sessions: sessionmaker[Session], uid: str) -> None:
    record_study(sessions, uid, PATIENT, datetime(2025, 2, 18, 10, 5), view_positions=("PA",))


def test_publish_writes_bundle_row_and_cds_view_once(sqlite_sessions: sessionmaker[Session], tmp_path: Path,
                                                     redis_client: redis_lib.Redis) -> None:
    _stored_study(sqlite_sessions, "7.1")
    reporting = _reporting(sqlite_sessions, tmp_path, redis_client)
    first = reporting.publish(demo_comparison("7.1"))
    assert first.status == messages_pb2.PublishStatus.PUBLISH_STATUS_PUBLISHED
    bundle = json.loads(Path(first.bundle_path).read_text())
    assert validate_bundle(bundle) == []
    view = read_latest(redis_client, "urn:oid:1.2.3.4", "P7")
    assert view is not None and view.diagnostic_report_id == first.diagnostic_report_id and view.demo_weights
    assert [f.code for f in view.findings] == ["pneumothorax"]

    second = reporting.publish(demo_comparison("7.1"))
    assert second.status == messages_pb2.PublishStatus.PUBLISH_STATUS_ALREADY_PUBLISHED
    assert second.diagnostic_report_id == first.diagnostic_report_id
    with sqlite_sessions() as session:
        assert results.count_reports(session, "7.1") == 1
        row = studies.get_study(session, "7.1")
        assert row is not None and row.state == "REPORTED"


def test_draft_stores_nothing(sqlite_sessions: sessionmaker[Session], tmp_path: Path,
                              redis_client: redis_lib.Redis) -> None:
    _stored_study(sqlite_sessions, "7.2")
    draft = _reporting(sqlite_sessions, tmp_path, redis_client).draft(demo_comparison("7.2"))
    assert "Pneumothorax" in draft.text
    assert not (tmp_path / "out").exists() and read_latest(redis_client, "urn:oid:1.2.3.4", "P7") is None


def test_publish_plans_one_delivery_per_destination_with_the_report(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis
) -> None:
    _stored_study(sqlite_sessions, "7.3")
    reporting = Reporting(sqlite_sessions, tmp_path / "out", redis_client, FhirSection(),
                          (Destination.FHIR_SERVER, Destination.PACS))
    first = reporting.publish(demo_comparison("7.3"))
    assert [(d.destination, d.event) for d in first.deliveries] == [
        ("fhir_server", "preliminary"), ("pacs", "preliminary")]
    again = reporting.publish(demo_comparison("7.3"))
    assert list(again.deliveries) == list(first.deliveries)  # handed on again; the rows decide what is sent
    with sqlite_sessions() as session:
        assert [row.status for row in deliveries.listing(session)] == ["pending", "pending"]
        row = results.load_report(session, "7.3", first.model.version)
        assert row is not None and row.comparison == demo_comparison("7.3").SerializeToString()


def test_the_published_resources_are_served_by_the_fhir_read_api(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis
) -> None:
    _stored_study(sqlite_sessions, "7.4")
    result = _reporting(sqlite_sessions, tmp_path, redis_client).publish(demo_comparison("7.4"))
    with sqlite_sessions() as session:
        stored = read_current(session, "DiagnosticReport", result.diagnostic_report_id)
        assert stored is not None and stored.version_id == 1
        report = json.loads(stored.text)
        assert report["status"] == "preliminary"
        assert all(ref["reference"].startswith("Observation/") for ref in report["result"])
        assert report["subject"] == {"type": "Patient", "identifier": report["subject"]["identifier"]}
