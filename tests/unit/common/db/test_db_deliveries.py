"""Delivery rows: planned once per destination and event, success and failure recorded, overdue found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import deliveries
from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.study import PatientInfo
from tests.helpers import record_study

NOW = datetime(2025, 2, 18, 12, 0, tzinfo=UTC)
PATIENT = PatientInfo(patient_id="P1", issuer="", name="", birth_date=None, sex="")


def test_planning_twice_keeps_one_row_per_destination_and_event(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "1.1", PATIENT, None)
    with sqlite_sessions.begin() as session:
        first = deliveries.plan(session, "1.1", "v1", [Destination.MLLP], DeliveryEvent.PRELIMINARY)
        again = deliveries.plan(session, "1.1", "v1", [Destination.MLLP], DeliveryEvent.PRELIMINARY)
        amended = deliveries.plan(session, "1.1", "v1", [Destination.MLLP], DeliveryEvent.AMENDED)
        assert first == again and first != amended
        assert len(deliveries.listing(session)) == 2


def test_success_failure_and_overdue(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "1.2", PATIENT, None)
    with sqlite_sessions.begin() as session:
        ok, later, dead = deliveries.plan(session, "1.2", "v1", list(Destination), DeliveryEvent.PRELIMINARY)
        rows = [deliveries.find(session, r) for r in (ok, later, dead)]
        assert all(rows)
        deliveries.record_success(rows[0], "DiagnosticReport/7", NOW)  # type: ignore[arg-type]
        deliveries.record_failure(rows[1], "503", NOW, max_attempts=3, retry_in_s=60)  # type: ignore[arg-type]
        deliveries.record_failure(rows[2], "AR", NOW, max_attempts=3, retry_in_s=60,  # type: ignore[arg-type]
                                  permanent=True)
    with sqlite_sessions() as session:
        assert [(r.destination, r.status, r.attempts) for r in deliveries.listing(session)][::-1] == [
            ("fhir_server", "delivered", 1), ("mllp", "pending", 1), ("pacs", "dead", 1)]
        assert deliveries.overdue(session, NOW) == []
        assert deliveries.overdue(session, NOW + timedelta(seconds=61)) == [later]
