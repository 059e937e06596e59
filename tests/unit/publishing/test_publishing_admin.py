"""`hilum publish`: listing deliveries and replaying the dead-lettered and overdue ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.cds_view import read_latest
from hilum.common.db import deliveries
from hilum.common.destinations import DeliveryEvent, DeliveryState, Destination
from hilum.common.settings import FhirSection
from hilum.fhir_api.store import read_current
from hilum.publishing import admin
from hilum.v1 import messages_pb2
from tests.unit.publishing.conftest import PATIENT

NOW = datetime(2025, 2, 18, 12, 0, tzinfo=UTC)


def _kill(sessions: sessionmaker[Session], request: messages_pb2.DeliveryRequest) -> None:
    with sessions.begin() as session:
        row = deliveries.find(session, request)
        assert row is not None
        deliveries.record_failure(row, "503", NOW, max_attempts=1, retry_in_s=1.0)


def test_replay_reopens_the_dead_and_enqueues_them_with_the_overdue(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    fhir, mllp, pacs = publish_study("9.1").deliveries
    _kill(sqlite_sessions, fhir)
    with sqlite_sessions.begin() as session:  # mllp: failed once, due again in an hour; pacs: never tried
        row = deliveries.find(session, mllp)
        assert row is not None
        deliveries.record_failure(row, "AE", NOW, max_attempts=5, retry_in_s=3600)
    enqueued: list[messages_pb2.DeliveryRequest] = []
    replayed = admin.replay(sqlite_sessions, enqueued.append, NOW + timedelta(minutes=1))
    assert enqueued == replayed == [fhir, pacs]
    with sqlite_sessions() as session:
        row = deliveries.find(session, fhir)
        assert row is not None and row.status == "pending" and row.attempts == 0 and row.last_error == "503"


def test_replay_can_be_narrowed_to_a_study_or_a_destination(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    first = publish_study("9.2", (Destination.FHIR_SERVER, Destination.MLLP)).deliveries
    second = publish_study("9.3", (Destination.FHIR_SERVER,)).deliveries
    for request in [*first, *second]:
        _kill(sqlite_sessions, request)
    enqueued: list[messages_pb2.DeliveryRequest] = []
    admin.replay(sqlite_sessions, enqueued.append, NOW, study_instance_uid="9.2", destination=Destination.MLLP)
    assert enqueued == [first[1]]
    admin.replay(sqlite_sessions, enqueued.append, NOW, destination=Destination.FHIR_SERVER)
    assert enqueued[1:] == [first[0], second[0]]


def test_list_lines_show_state_destination_and_error_without_phi(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("9.4", (Destination.PACS,)).deliveries
    _kill(sqlite_sessions, request)
    (line,) = admin.list_lines(sqlite_sessions, DeliveryState.DEAD)
    assert "dead" in line and "pacs" in line and "preliminary" in line and "503" in line
    assert "9.4" not in line and "P9" not in line and "DOE" not in line  # study ref only, never the UID or patient
    assert admin.list_lines(sqlite_sessions, DeliveryState.DELIVERED) == []


def test_a_status_change_goes_to_the_destinations_that_take_one(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult],
    redis_client: redis_lib.Redis,
) -> None:
    result = publish_study("9.5")
    system = FhirSection().patient_identifier_system
    assert read_latest(redis_client, system, PATIENT.patient_id) is not None
    enqueued: list[messages_pb2.DeliveryRequest] = []

    def change(uid: str, version: str, event: DeliveryEvent) -> list[messages_pb2.DeliveryRequest]:
        return admin.change_status(sqlite_sessions, enqueued.append, uid, version, event, tuple(Destination), NOW,
                                   redis_client, system)

    amended = change("9.5", result.model.version, DeliveryEvent.AMENDED)
    assert [(r.destination, r.event) for r in amended] == [("fhir_server", "amended"), ("mllp", "amended")]
    assert read_latest(redis_client, system, PATIENT.patient_id) is not None  # an amended result still shows
    enqueued.clear()
    planned = change("9.5", result.model.version, DeliveryEvent.CANCELLED)
    assert enqueued == planned
    assert [(r.destination, r.event) for r in planned] == [("fhir_server", "cancelled"), ("mllp", "cancelled")]
    with sqlite_sessions() as session:  # Hilum's own FHIR read API serves the new version
        stored = read_current(session, "DiagnosticReport", result.diagnostic_report_id)
        assert stored is not None and stored.version_id == 3 and json.loads(stored.text)["status"] == "cancelled"
    assert read_latest(redis_client, system, PATIENT.patient_id) is None  # no CDS card cites a cancelled result
    with pytest.raises(admin.ReportNotFound):
        change("9.404", "v", DeliveryEvent.AMENDED)
    with pytest.raises(ValueError, match="amended or cancelled"):
        change("9.5", "v", DeliveryEvent.PRELIMINARY)


def test_stalled_deliveries_are_handed_on_again_and_only_they(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    fhir, mllp, pacs = publish_study("9.7").deliveries
    now = datetime.now(UTC)
    with sqlite_sessions.begin() as session:
        retried = deliveries.find(session, mllp)  # failed just now, its retry due in an hour: not stalled
        delivered = deliveries.find(session, pacs)
        assert retried is not None and delivered is not None
        deliveries.record_failure(retried, "AE", now, max_attempts=5, retry_in_s=3600)
        deliveries.record_success(delivered, "1.2.3", now)
    enqueued: list[messages_pb2.DeliveryRequest] = []
    assert admin.resend_stalled(sqlite_sessions, enqueued.append, now - timedelta(minutes=15)) == []  # all fresh
    # A quarter of an hour on, nothing has touched the FHIR delivery, never attempted: its message was lost.
    assert admin.resend_stalled(sqlite_sessions, enqueued.append, now + timedelta(seconds=1)) == [fhir]
    assert enqueued == [fhir]
