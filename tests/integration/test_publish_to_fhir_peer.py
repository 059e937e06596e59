"""Deliveries to a real FHIR server (Medplum, atomic transactions) through a failure-injecting proxy:
retried with backoff, dead-lettered after the last attempt, delivered by a replay, never duplicated.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.errors import TransientError
from hilum.common.settings import FhirDestination, FhirSection, PublishSection
from hilum.common.study import PatientInfo
from hilum.publishing import admin
from hilum.publishing.senders import fhir_sender
from hilum.publishing.service import PublishedReport, Publishing, load_published
from hilum.reporting.service import Reporting
from hilum.runtime.fhir_peer import FhirPeer
from hilum.v1 import messages_pb2, publishing_pb2
from tests.fault_proxy import DROP, FaultProxy, delay, respond
from tests.helpers import demo_comparison, record_study

pytestmark = pytest.mark.integration

TYPES = ("ImagingStudy", "Device", "Observation", "DiagnosticReport", "Provenance")
PATIENT = PatientInfo(patient_id="FP1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
NOW = datetime(2025, 2, 18, 12, 0, tzinfo=UTC)


@pytest.fixture
def proxy(fhir_peer: FhirPeer) -> Iterator[FaultProxy]:
    with FaultProxy(fhir_peer.base_url) as faults:
        yield faults


def counts(peer: FhirPeer) -> dict[str, int]:
    with httpx.Client(timeout=10.0) as client:
        return {kind: len(client.get(f"{peer.base_url}/{kind}", params={"_count": "1000"}).json().get("entry", []))
                for kind in TYPES}


def _published(sessions: sessionmaker[Session], tmp_path: Path, client: redis_lib.Redis,
               uid: str) -> messages_pb2.DeliveryRequest:
    record_study(sessions, uid, PATIENT, datetime(2025, 2, 18, 10, 5), view_positions=("PA",))
    reporting = Reporting(sessions, tmp_path / "out", client, FhirSection(order_reference="identifier"),
                          (Destination.FHIR_SERVER,))
    (request,) = reporting.publish(demo_comparison(uid)).deliveries
    return request


def _published_report(sessions: sessionmaker[Session], tmp_path: Path, client: redis_lib.Redis,
                      uid: str) -> PublishedReport:
    """A study published by reporting, as the FHIR sender gets it from the store."""
    request = _published(sessions, tmp_path, client, uid)
    with sessions() as session:
        return load_published(session, request.study_instance_uid, request.model_version)


def test_faults_are_retried_then_dead_lettered_and_a_replay_delivers_once(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis, fhir_peer: FhirPeer,
    proxy: FaultProxy,
) -> None:
    request = _published(sqlite_sessions, tmp_path, redis_client, "2.25.700001")
    destination = FhirDestination(url=proxy.base_url, timeout_s=1.0, max_entries_per_transaction=2)
    publishing = Publishing(sqlite_sessions, {Destination.FHIR_SERVER: fhir_sender(destination)},
                            PublishSection(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02),
                            clock=lambda: NOW)
    before = counts(fhir_peer)
    proxy.script(respond(503, b"maintenance"), DROP, delay(3.0))
    for _ in range(2):
        with pytest.raises(TransientError):
            publishing.deliver_or_retry(request)
    dead = publishing.deliver_or_retry(request)
    assert dead.status == publishing_pb2.DELIVERY_STATUS_DEAD and dead.attempts == 3
    assert dead.last_error == "FHIR server (POST /fhir/R4) did not answer within 1 s"
    assert counts(fhir_peer) == before  # every fault hit the first part: nothing reached the server

    replayed: list[messages_pb2.DeliveryRequest] = []
    assert admin.replay(sqlite_sessions, replayed.append, NOW) == [request]
    delivered = publishing.deliver(replayed[0])
    assert delivered.status == publishing_pb2.DELIVERY_STATUS_DELIVERED
    assert delivered.receipt.startswith("DiagnosticReport/")
    after = counts(fhir_peer)
    assert {kind: after[kind] - before[kind] for kind in TYPES} == {
        "ImagingStudy": 1, "Device": 1, "Observation": 1, "DiagnosticReport": 1, "Provenance": 1}
    with httpx.Client(timeout=10.0) as client:  # later parts refer to what earlier parts created
        report = client.get(f"{fhir_peer.base_url}/{delivered.receipt.split('/_history/')[0]}").json()
    assert report["result"][0]["reference"].startswith("Observation/")
    assert report["imagingStudy"][0]["reference"].startswith("ImagingStudy/")


def test_a_second_delivery_of_the_same_report_creates_nothing(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis, fhir_peer: FhirPeer,
) -> None:
    report = _published_report(sqlite_sessions, tmp_path, redis_client, "2.25.700002")
    send = fhir_sender(FhirDestination(url=fhir_peer.base_url, max_entries_per_transaction=8))
    first = send(report, DeliveryEvent.PRELIMINARY)
    after_first = counts(fhir_peer)
    assert send(report, DeliveryEvent.PRELIMINARY) == first
    assert counts(fhir_peer) == after_first


def test_an_amendment_is_a_versioned_status_change(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis, fhir_peer: FhirPeer,
) -> None:
    report = _published_report(sqlite_sessions, tmp_path, redis_client, "2.25.700003")
    send = fhir_sender(FhirDestination(url=fhir_peer.base_url, max_entries_per_transaction=8))
    location = send(report, DeliveryEvent.PRELIMINARY)
    assert send(report, DeliveryEvent.AMENDED).startswith("DiagnosticReport version ")
    with httpx.Client(timeout=10.0) as client:
        stored = client.get(f"{fhir_peer.base_url}/{location.split('/_history/')[0]}").json()
    assert stored["status"] == "amended" and stored["meta"]["versionId"] != location.rsplit("/", 1)[-1]


def test_a_reprocessed_studys_report_is_amended_names_the_earlier_one_and_cancels_it(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis, fhir_peer: FhirPeer,
) -> None:
    uid = "2.25.700004"
    request = _published(sqlite_sessions, tmp_path, redis_client, uid)
    publishing = Publishing(sqlite_sessions, {Destination.FHIR_SERVER: fhir_sender(
        FhirDestination(url=fhir_peer.base_url, max_entries_per_transaction=8))}, PublishSection(), clock=lambda: NOW)
    first = publishing.deliver(request)
    comparison = demo_comparison(uid)
    comparison.current.model.CopyFrom(messages_pb2.ModelInfo(name="cxr_findings", version="2.0.0"))
    reporting = Reporting(sqlite_sessions, tmp_path / "out", redis_client, FhirSection(order_reference="identifier"),
                          (Destination.FHIR_SERVER,))
    planned = reporting.publish(comparison).deliveries
    assert [(d.model_version, d.event) for d in planned] == [("2.0.0", "preliminary"), ("demo-untrained", "cancelled")]
    outcomes = [publishing.deliver(d) for d in planned]
    assert [o.status for o in outcomes] == [publishing_pb2.DELIVERY_STATUS_DELIVERED] * 2
    with httpx.Client(timeout=10.0) as client:
        earlier_id = first.receipt.split("/_history/")[0]
        earlier = client.get(f"{fhir_peer.base_url}/{earlier_id}").json()
        amended = client.get(f"{fhir_peer.base_url}/{outcomes[0].receipt.split('/_history/')[0]}").json()
        provenance = client.get(f"{fhir_peer.base_url}/Provenance", params={
            "target": outcomes[0].receipt.split("/_history/")[0]}).json()["entry"][0]["resource"]
    assert earlier["status"] == "cancelled" and amended["status"] == "amended"
    # The Provenance names the earlier report by the identifier the server holds it under.
    revision = [e["what"]["identifier"] for e in provenance["entity"] if e["role"] == "revision"]
    assert revision == earlier["identifier"]
