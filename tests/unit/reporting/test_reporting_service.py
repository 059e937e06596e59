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
from hilum.common.fhir.identifiers import resource_uuid
from hilum.common.fhir.validation import validate_bundle
from hilum.common.settings import FhirSection
from hilum.common.study import PatientInfo
from hilum.fhir_api.store import read_current, set_status
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


def _under_version(comparison: messages_pb2.PriorComparison, version: str) -> messages_pb2.PriorComparison:
    """The same comparison as if a newer model version (validated weights) had produced it."""
    comparison.current.model.CopyFrom(messages_pb2.ModelInfo(name="cxr_findings", version=version))
    return comparison


def test_a_newer_model_versions_report_supersedes_the_earlier_one_everywhere(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis
) -> None:
    _stored_study(sqlite_sessions, "7.5")
    instants = iter([datetime(2025, 2, 18, 12, 0, tzinfo=UTC), datetime(2025, 3, 1, 8, 0, tzinfo=UTC)])
    reporting = Reporting(sqlite_sessions, tmp_path / "out", redis_client,
                          FhirSection(patient_identifier_system="urn:oid:1.2.3.4"),
                          (Destination.FHIR_SERVER, Destination.MLLP, Destination.PACS), clock=lambda: next(instants))
    first = reporting.publish(demo_comparison("7.5"))
    second = reporting.publish(_under_version(demo_comparison("7.5"), "2.0.0"))
    assert second.status == messages_pb2.PublishStatus.PUBLISH_STATUS_PUBLISHED
    assert second.diagnostic_report_id != first.diagnostic_report_id
    assert second.amends_model_version == "demo-untrained"
    # The new report goes everywhere; the superseded one is cancelled at the FHIR server only (HL7 v2 receives
    # the new report as a correction of the same order).
    assert [(d.model_version, d.destination, d.event) for d in second.deliveries] == [
        ("2.0.0", "fhir_server", "preliminary"), ("2.0.0", "mllp", "preliminary"), ("2.0.0", "pacs", "preliminary"),
        ("demo-untrained", "fhir_server", "cancelled")]
    with sqlite_sessions() as session:
        old = read_current(session, "DiagnosticReport", first.diagnostic_report_id)
        new = read_current(session, "DiagnosticReport", second.diagnostic_report_id)
        assert old is not None and new is not None
        assert (json.loads(old.text)["status"], old.version_id) == ("cancelled", 2)
        new_report = json.loads(new.text)
        assert new_report["status"] == "amended"
        assert new_report["conclusion"].startswith("AMENDED: this result replaces the one reported for this study "
                                                   "with model version demo-untrained.")
        assert results.count_reports(session, "7.5") == 2
    # The Provenance names the superseded report by its identifier.
    bundle = json.loads(Path(second.bundle_path).read_text())
    assert validate_bundle(bundle) == []
    with sqlite_sessions() as session:
        provenance = read_current(session, "Provenance", resource_uuid("Provenance", "7.5", "2.0.0"))
        assert provenance is not None
        revision = [e for e in json.loads(provenance.text)["entity"] if e["role"] == "revision"]
        assert [e["what"]["identifier"]["value"] for e in revision] == ["urn:hilum:report:7.5:demo-untrained"]
    view = read_latest(redis_client, "urn:oid:1.2.3.4", "P7")
    assert view is not None and view.diagnostic_report_id == second.diagnostic_report_id and not view.demo_weights
    assert view.amends_model_version == "demo-untrained"

    # Nothing is reported twice for a version: a redelivery changes nothing and hands on the same deliveries.
    again = reporting.publish(_under_version(demo_comparison("7.5"), "2.0.0"))
    assert again.status == messages_pb2.PublishStatus.PUBLISH_STATUS_ALREADY_PUBLISHED
    assert list(again.deliveries) == list(second.deliveries)
    with sqlite_sessions() as session:
        assert results.count_reports(session, "7.5") == 2
        assert len(deliveries.listing(session)) == 7
        old = read_current(session, "DiagnosticReport", first.diagnostic_report_id)
        assert old is not None and old.version_id == 2


def test_a_report_after_a_cancelled_one_amends_nothing(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis
) -> None:
    _stored_study(sqlite_sessions, "7.6")
    reporting = _reporting(sqlite_sessions, tmp_path, redis_client)
    first = reporting.publish(demo_comparison("7.6"))
    with sqlite_sessions.begin() as session:
        assert set_status(session, "DiagnosticReport", first.diagnostic_report_id, "cancelled",
                          datetime(2025, 2, 18, 12, 1, tzinfo=UTC))
    second = reporting.publish(_under_version(demo_comparison("7.6"), "2.0.0"))
    with sqlite_sessions() as session:
        new = read_current(session, "DiagnosticReport", second.diagnostic_report_id)
        assert new is not None and json.loads(new.text)["status"] == "preliminary"
    assert not second.deliveries
