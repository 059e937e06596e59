"""Publishing's one implementation: deliver a published result to one destination, once.

Called by the gRPC Deliver method and by the Celery task on the "publishing" queue. The delivery row
(planned by reporting in the report's own transaction) is the record of truth: a delivered row is never
sent again, a failed attempt is counted and scheduled with backoff, and after `max_attempts` (or a
refusal the destination will repeat) the row is dead until `hilum publish replay` reopens it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.trail import AuditTrail
from hilum.common.db import deliveries, results, studies
from hilum.common.db.models import DeliveryRow
from hilum.common.destinations import DeliveryEvent, DeliveryState, Destination
from hilum.common.errors import PermanentError, TransientError
from hilum.common.fhir.audit_event import DESTINATION_ROLE, AuditAgent, AuditKind, AuditOutcome, AuditRecord
from hilum.common.logs import study_ref
from hilum.common.metrics import DELIVERIES_DEAD
from hilum.common.reported_findings import ReportedFindings, reported_findings
from hilum.common.settings import PublishSection
from hilum.common.study import StudyInfo
from hilum.common.tracing import study_span
from hilum.v1 import messages_pb2, publishing_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedReport:
    """What every destination's message is built from: the stored report and what it was drafted from."""

    study: StudyInfo
    reported: ReportedFindings
    draft: messages_pb2.DraftReport
    comparison: messages_pb2.PriorComparison
    bundle: dict[str, Any]
    diagnostic_report_id: str
    amends: str = ""  # the model version of the study's earlier report this one supersedes ("" for a first report)


# Sends one event of a published report to its destination; returns the destination's receipt.
Sender = Callable[[PublishedReport, DeliveryEvent], str]

_STATE = {
    DeliveryState.PENDING: publishing_pb2.DELIVERY_STATUS_PENDING,
    DeliveryState.DELIVERED: publishing_pb2.DELIVERY_STATUS_DELIVERED,
    DeliveryState.DEAD: publishing_pb2.DELIVERY_STATUS_DEAD,
}


def outcome_of(row: DeliveryRow) -> publishing_pb2.DeliveryOutcome:
    """The delivery row as the Deliver method answers it."""
    return publishing_pb2.DeliveryOutcome(
        request=deliveries.request_of(row), status=_STATE[DeliveryState(row.status)], attempts=row.attempts,
        receipt=row.receipt, last_error=row.last_error,
    )


def load_published(session: Session, uid: str, model_version: str) -> PublishedReport:
    """The published report of (study, model version) with its study and comparison."""
    row = results.load_report(session, uid, model_version)
    study = studies.study_info(session, uid)
    if row is None or study is None or not row.comparison:
        raise PermanentError("no published report with its comparison for this delivery")
    comparison = messages_pb2.PriorComparison.FromString(row.comparison)
    published = messages_pb2.PublishResult.FromString(row.payload)
    return PublishedReport(
        study=study, reported=reported_findings(comparison), draft=published.draft, comparison=comparison,
        bundle=json.loads(row.bundle_json), diagnostic_report_id=row.diagnostic_report_id,
        amends=published.amends_model_version,
    )


class Publishing:
    """Delivers published results through one Sender per configured destination."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        senders: Mapping[Destination, Sender],
        policy: PublishSection,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: AuditTrail | None = None,
    ) -> None:
        self._sessions = sessions
        self._senders = senders
        self._policy = policy
        self._clock = clock
        self._audit = audit or AuditTrail("publishing")

    def retry_in_s(self, attempts: int) -> float:
        """Exponential backoff after `attempts` failed attempts, capped, with up to 10 % jitter."""
        base = min(self._policy.backoff_max_s, self._policy.backoff_base_s * 2.0 ** max(attempts - 1, 0))
        return base * (1 + random.uniform(0, 0.1))

    def deliver(self, request: messages_pb2.DeliveryRequest) -> publishing_pb2.DeliveryOutcome:
        """Send the delivery unless it is already delivered or dead; record the attempt either way."""
        outcome, _retry_in_s = self._deliver(request)
        return outcome

    def deliver_or_retry(self, request: messages_pb2.DeliveryRequest) -> publishing_pb2.DeliveryOutcome:
        """deliver(), raising TransientError with the scheduled wait while the delivery is still pending
        (the queue task retries then; the attempts are counted in the delivery row, not by Celery).
        """
        outcome, retry_in_s = self._deliver(request)
        if outcome.status == publishing_pb2.DELIVERY_STATUS_PENDING:
            raise TransientError(f"delivery to {request.destination} failed: {outcome.last_error}",
                                 retry_after_s=retry_in_s)
        return outcome

    def _deliver(self, request: messages_pb2.DeliveryRequest) -> tuple[publishing_pb2.DeliveryOutcome, float]:
        """The outcome of one delivery attempt (none when it is not pending), and the seconds until the next."""
        with self._sessions.begin() as session:
            row = deliveries.find(session, request)
            if row is None:
                raise PermanentError("no such delivery was planned")
            if row.status != DeliveryState.PENDING.value:
                return outcome_of(row), 0.0
            report = load_published(session, request.study_instance_uid, request.model_version)
        with study_span("deliver", request.study_instance_uid, destination=request.destination,
                        event=request.event) as span:
            error, permanent, receipt = self._attempt(request, report)
            span.set_attribute("hilum.outcome", "delivered" if error is None else
                               "refused" if permanent else "failed")
        retry_in_s = 0.0
        with self._sessions.begin() as session:
            row = deliveries.find(session, request)
            if row is None:
                raise PermanentError("the delivery disappeared while it was sent")
            now = self._clock()
            if error is None:
                deliveries.record_success(row, receipt, now)
            else:
                retry_in_s = self.retry_in_s(row.attempts + 1)
                deliveries.record_failure(row, error, now, max_attempts=self._policy.max_attempts,
                                          retry_in_s=retry_in_s, permanent=permanent)
            outcome = outcome_of(row)
            self._audit.record(session, self._export_record(request, report, outcome, permanent))
        extra = {"study_ref": study_ref(request.study_instance_uid), "destination": request.destination,
                 "event": request.event, "attempts": outcome.attempts}
        if outcome.status == publishing_pb2.DELIVERY_STATUS_DEAD:
            log.error("delivery dead-lettered", extra=extra)
            DELIVERIES_DEAD.labels(destination=request.destination).inc()
        elif error is not None:
            log.warning("delivery will be retried", extra=extra)
        else:
            log.info("delivered", extra=extra)
        return outcome, retry_in_s

    def _export_record(self, request: messages_pb2.DeliveryRequest, report: PublishedReport,
                       outcome: publishing_pb2.DeliveryOutcome, permanent: bool) -> AuditRecord:
        """The audit record of one attempt to send a result: the destination, the patient, the study and report, what
        the destination answered or why the attempt failed."""
        failed = outcome.status != publishing_pb2.DELIVERY_STATUS_DELIVERED
        return AuditRecord(
            kind=AuditKind.EXPORT, requestor=self._audit.itself,
            agents=(AuditAgent(user_id=request.destination, role=DESTINATION_ROLE),),
            outcome=(AuditOutcome.SUCCESS if not failed else
                     AuditOutcome.MINOR_FAILURE if permanent else AuditOutcome.SERIOUS_FAILURE),
            outcome_text=outcome.last_error if failed else "",
            patients=(self._audit.patient(report.study.patient),), study_uids=(request.study_instance_uid,),
            resources=(f"DiagnosticReport/{report.diagnostic_report_id}",),
            details=(("destination", request.destination), ("event", request.event),
                     ("attempt", str(outcome.attempts)), ("receipt", outcome.receipt)),
        )

    def _attempt(
        self, request: messages_pb2.DeliveryRequest, report: PublishedReport
    ) -> tuple[str | None, bool, str]:
        """(error or None, whether the error is permanent, receipt) of one attempt to send."""
        try:
            destination, event = Destination(request.destination), DeliveryEvent(request.event)
        except ValueError:
            return f"unknown destination or event {request.destination!r}/{request.event!r}", True, ""
        sender = self._senders.get(destination)
        if sender is None:
            return f"destination {destination.value} is not configured", True, ""
        try:
            return None, False, sender(report, event)
        except PermanentError as exc:
            return f"refused: {exc}", True, ""
        except TransientError as exc:
            return str(exc) or type(exc).__name__, False, ""
        except Exception as exc:  # unexpected: counted and retried like a transient failure, never fatal
            log.exception("unexpected delivery failure", extra={"destination": request.destination})
            return f"unexpected {type(exc).__name__}", False, ""

