"""`hilum publish`: what an operator sees of deliveries, replaying the dead-lettered ones, and status changes; and
the sweep that hands stalled deliveries on again.

A replay reopens dead deliveries with fresh attempts and hands them, with any pending delivery whose
next attempt is overdue (its queue message was lost), to the publishing queue again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import redis
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.cds_view import withdraw_view
from hilum.common.db import deliveries, results, studies
from hilum.common.destinations import DESTINATIONS_OF_EVENT, DeliveryEvent, DeliveryState, Destination
from hilum.common.logs import study_ref
from hilum.common.metrics import RESUMED
from hilum.fhir_api.store import set_status
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)

class ReportNotFound(LookupError):
    """No report was published for the study and model version named."""


def list_lines(sessions: sessionmaker[Session], state: DeliveryState | None, limit: int = 100) -> list[str]:
    """One line per delivery, newest first: id, state, destination, event, attempts, study ref, last error."""
    with sessions() as session:
        rows = deliveries.listing(session, state, limit)
        return [
            f"{row.id:6d}  {row.status:9s}  {row.destination:11s}  {row.event:11s}  attempts {row.attempts}  "
            f"study {study_ref(row.study_instance_uid)}  {row.last_error or row.receipt}"
            for row in rows
        ]


def change_status(
    sessions: sessionmaker[Session],
    enqueue: Callable[[messages_pb2.DeliveryRequest], None],
    study_instance_uid: str,
    model_version: str,
    event: DeliveryEvent,
    destinations: tuple[Destination, ...],
    now: datetime,
    cds_cache: redis.Redis,
    patient_identifier_system: str,
) -> list[messages_pb2.DeliveryRequest]:
    """Set a published report's status (amended, cancelled) in Hilum's FHIR read API (a new version of its
    DiagnosticReport), withdraw a cancelled one from CDS Hooks, then plan and enqueue the change for each
    configured destination that takes one. Raises ReportNotFound when there is no such report.
    """
    if event == DeliveryEvent.PRELIMINARY:
        raise ValueError("a status change is amended or cancelled")
    wanted = [d for d in destinations if d in DESTINATIONS_OF_EVENT[event]]
    with sessions.begin() as session:
        report = results.load_report(session, study_instance_uid, model_version)
        if report is None or not set_status(session, "DiagnosticReport", report.diagnostic_report_id, event.value, now):
            raise ReportNotFound("no published report for this study and model version")
        planned = deliveries.plan(session, study_instance_uid, model_version, wanted, event)
        study = studies.study_info(session, study_instance_uid)
    if event == DeliveryEvent.CANCELLED and study is not None:
        withdraw_view(cds_cache, patient_identifier_system, study.patient.patient_id, report.diagnostic_report_id)
    for request in planned:
        enqueue(request)
    return planned


def replay(
    sessions: sessionmaker[Session],
    enqueue: Callable[[messages_pb2.DeliveryRequest], None],
    now: datetime,
    *,
    study_instance_uid: str = "",
    destination: Destination | None = None,
) -> list[messages_pb2.DeliveryRequest]:
    """Reopen the dead deliveries (of one study and/or destination, if given), which makes them due, then
    enqueue every due pending one of them; returns what was enqueued. The rows are committed before anything
    is enqueued.
    """
    with sessions.begin() as session:
        deliveries.reopen(session, study_instance_uid=study_instance_uid, destination=destination)
        due = deliveries.overdue(session, now, study_instance_uid=study_instance_uid, destination=destination)
    for request in due:
        enqueue(request)
    return due


def resend_stalled(
    sessions: sessionmaker[Session], enqueue: Callable[[messages_pb2.DeliveryRequest], None], moved_before: datetime
) -> list[messages_pb2.DeliveryRequest]:
    """Enqueue again every pending delivery nothing has touched since moved_before although its attempt was due
    (deliveries.stalled); returns them. The assembler's loop calls it with queue.stalled_after_s, which must exceed
    the publishing queue's longest wait: a delivery only slow would be attempted twice at once."""
    with sessions() as session:
        lost = deliveries.stalled(session, moved_before)
    for request in lost:
        enqueue(request)
    if lost:
        log.warning("deliveries stalled; handed to the publishing queue again", extra={"count": len(lost)})
        RESUMED.labels(what="delivery").inc(len(lost))
    return lost
