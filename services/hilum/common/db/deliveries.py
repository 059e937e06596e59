"""Deliveries of published results: planned in the report's own transaction, then tried until done or dead.

A delivery row is unique per (study, model version, destination, event). It is written before its
queue message is sent, so a lost message loses nothing: replay or a redelivered report finds the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hilum.common.db.models import DeliveryRow
from hilum.common.destinations import DeliveryEvent, DeliveryState, Destination
from hilum.v1 import messages_pb2


def request_of(row: DeliveryRow) -> messages_pb2.DeliveryRequest:
    """The queue message that asks for this delivery."""
    return messages_pb2.DeliveryRequest(
        study_instance_uid=row.study_instance_uid, model_version=row.model_version,
        destination=row.destination, event=row.event,
    )


def find(session: Session, request: messages_pb2.DeliveryRequest) -> DeliveryRow | None:
    """The delivery row a request names, or None."""
    stmt = select(DeliveryRow).where(
        DeliveryRow.study_instance_uid == request.study_instance_uid,
        DeliveryRow.model_version == request.model_version,
        DeliveryRow.destination == request.destination,
        DeliveryRow.event == request.event,
    )
    return session.scalars(stmt).first()


def plan(
    session: Session, uid: str, model_version: str, destinations: Iterable[Destination], event: DeliveryEvent
) -> list[messages_pb2.DeliveryRequest]:
    """A pending delivery per destination (an existing row is kept as it is); returns their requests."""
    requests = []
    for destination in destinations:
        request = messages_pb2.DeliveryRequest(
            study_instance_uid=uid, model_version=model_version, destination=destination.value, event=event.value
        )
        if find(session, request) is None:
            session.add(DeliveryRow(
                study_instance_uid=uid, model_version=model_version, destination=destination.value,
                event=event.value, status=DeliveryState.PENDING.value, attempts=0, last_error="", receipt="",
            ))
        requests.append(request)
    session.flush()
    return requests


def record_success(row: DeliveryRow, receipt: str, now: datetime) -> None:
    """The destination took it: delivered, with what it answered."""
    row.attempts += 1
    row.status = DeliveryState.DELIVERED.value
    row.receipt = receipt
    row.last_error = ""
    row.delivered_at = now
    row.next_attempt_at = None


def record_failure(
    row: DeliveryRow, error: str, now: datetime, *, max_attempts: int, retry_in_s: float, permanent: bool = False
) -> None:
    """An attempt failed: pending again in retry_in_s, or dead once max_attempts are spent or the
    destination refused it for good (permanent: a retry would be refused the same way).
    """
    row.attempts += 1
    row.last_error = error
    if permanent or row.attempts >= max_attempts:
        row.status = DeliveryState.DEAD.value
        row.next_attempt_at = None
    else:
        row.status = DeliveryState.PENDING.value
        row.next_attempt_at = now + timedelta(seconds=retry_in_s)


def listing(session: Session, state: DeliveryState | None = None, limit: int = 100) -> list[DeliveryRow]:
    """Deliveries, newest first, optionally only those in `state`."""
    stmt = select(DeliveryRow).order_by(DeliveryRow.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(DeliveryRow.status == state.value)
    return list(session.scalars(stmt))


def _narrowed(stmt: Select[DeliveryRow], study_instance_uid: str,
              destination: Destination | None) -> Select[DeliveryRow]:
    """stmt limited to one study and/or one destination, where given."""
    if study_instance_uid:
        stmt = stmt.where(DeliveryRow.study_instance_uid == study_instance_uid)
    if destination is not None:
        stmt = stmt.where(DeliveryRow.destination == destination.value)
    return stmt


def reopen(session: Session, *, study_instance_uid: str = "", destination: Destination | None = None) -> int:
    """Dead deliveries (of one study and/or destination, if given) made pending and due now, with fresh
    attempts; returns how many."""
    stmt = _narrowed(select(DeliveryRow).where(DeliveryRow.status == DeliveryState.DEAD.value),
                     study_instance_uid, destination)
    rows = list(session.scalars(stmt))
    for row in rows:
        row.status = DeliveryState.PENDING.value
        row.attempts = 0
        row.next_attempt_at = None
    session.flush()
    return len(rows)


def overdue(
    session: Session, now: datetime, *, study_instance_uid: str = "", destination: Destination | None = None
) -> list[messages_pb2.DeliveryRequest]:
    """Pending deliveries (of one study and/or destination, if given) whose next attempt is due or was never
    scheduled, oldest first: what a lost queue message or a replay leaves to send."""
    stmt = (
        select(DeliveryRow)
        .where(DeliveryRow.status == DeliveryState.PENDING.value)
        .where((DeliveryRow.next_attempt_at.is_(None)) | (DeliveryRow.next_attempt_at <= now))
    )
    return [request_of(row) for row in session.scalars(
        _narrowed(stmt, study_instance_uid, destination).order_by(DeliveryRow.id))]


def stalled(session: Session, moved_before: datetime) -> list[messages_pb2.DeliveryRequest]:
    """Pending deliveries untouched since moved_before whose attempt was due by then (or never scheduled), oldest
    first: their queue message was lost (a worker or the broker died with it)."""
    stmt = (
        select(DeliveryRow)
        .where(DeliveryRow.status == DeliveryState.PENDING.value, DeliveryRow.updated_at < moved_before)
        .where((DeliveryRow.next_attempt_at.is_(None)) | (DeliveryRow.next_attempt_at < moved_before))
        .order_by(DeliveryRow.id)
    )
    return [request_of(row) for row in session.scalars(stmt)]
