"""`hilum status` without a study: the whole pipeline at a glance, for the person on call.

Read straight from the two places that hold the truth: Redis (each stage's queue, the messages workers hold
unacknowledged, the audit spool) and the database (studies by state, the oldest still in flight, failures, dead
letters waiting for replay, deliveries given up on, audit events waiting for the syslog export). Studies are named
by their log reference (study_ref), never by UID or patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.spool import SPOOL_KEY
from hilum.common import study_state
from hilum.common.db.models import AuditOutboxRow, DeadLetterRow, DeliveryRow, StudyRow, stored_utc
from hilum.common.destinations import DeliveryState
from hilum.common.logs import study_ref
from hilum.common.queue import Stage

# Kombu's Redis transport keeps the messages workers have taken but not yet acknowledged in this hash.
UNACKED_KEY = "unacked"
RECENT_FAILURES = 5


@dataclass(frozen=True)
class Failure:
    """A failed study: its log reference, when it last changed, and why."""

    ref: str
    at: datetime
    error: str


@dataclass(frozen=True)
class PipelineStatus:
    """Queue depths by stage, messages in workers' hands, studies by state, the oldest study in flight (its age in
    seconds), the latest failures, dead letters waiting by stage, deliveries given up on by destination, and the
    audit events waiting in the doors' spool and for the syslog export."""

    queued: dict[str, int]
    in_workers: int
    studies: dict[str, int]
    oldest_in_flight_s: float | None
    failures: tuple[Failure, ...]
    dead_letters: dict[str, int]
    dead_deliveries: dict[str, int]
    audit_spooled: int = 0
    audit_unexported: int = 0

    @property
    def in_flight(self) -> int:
        """Studies some stage still has work to do for."""
        return sum(self.studies.get(study_state.name_of(state), 0) for state in study_state.IN_FLIGHT)


def pipeline_status(sessions: sessionmaker[Session], client: redis.Redis, now: datetime) -> PipelineStatus:
    """The pipeline as it stands at `now`."""
    queued = {stage.value: int(client.llen(stage.value)) for stage in Stage}
    in_workers = int(client.hlen(UNACKED_KEY))
    in_flight = [study_state.name_of(state) for state in study_state.IN_FLIGHT]
    with sessions() as session:
        by_state = _counts(session, select(StudyRow.state, func.count()).group_by(StudyRow.state))
        oldest = session.scalar(select(func.min(StudyRow.received_at)).where(StudyRow.state.in_(in_flight)))
        failed = session.scalars(select(StudyRow).where(StudyRow.state == study_state.name_of(study_state.FAILED))
                                 .order_by(StudyRow.updated_at.desc()).limit(RECENT_FAILURES))
        failures = tuple(Failure(study_ref(row.study_instance_uid), stored_utc(row.updated_at), row.error)
                         for row in failed)
        letters = _counts(session, select(DeadLetterRow.stage, func.count())
                          .where(DeadLetterRow.replayed_at.is_(None)).group_by(DeadLetterRow.stage))
        dead = _counts(session, select(DeliveryRow.destination, func.count())
                       .where(DeliveryRow.status == DeliveryState.DEAD.value).group_by(DeliveryRow.destination))
        unexported = session.scalar(select(func.count()).select_from(AuditOutboxRow)) or 0
    return PipelineStatus(
        queued=queued, in_workers=in_workers, studies=by_state,
        oldest_in_flight_s=(now - stored_utc(oldest)).total_seconds() if oldest is not None else None,
        failures=failures, dead_letters=letters, dead_deliveries=dead,
        audit_spooled=int(client.llen(SPOOL_KEY)), audit_unexported=unexported,
    )


def status_lines(status: PipelineStatus) -> list[str]:
    """The status for a person, a few lines; what needs a person ends the report."""
    queues = ", ".join(f"{name} {count}" for name, count in status.queued.items())
    states = [*study_state.PIPELINE, study_state.ANALYSED, study_state.FAILED]
    counts = ", ".join(f"{study_state.name_of(s)} {status.studies.get(study_state.name_of(s), 0)}" for s in states)
    oldest = (f"; oldest received {_duration(status.oldest_in_flight_s)} ago"
              if status.oldest_in_flight_s is not None else "")
    lines = [
        f"queues: {queues}; {status.in_workers} in workers' hands",
        f"studies: {counts}",
        f"in flight: {status.in_flight}{oldest}",
        f"audit trail: {status.audit_spooled} events in the doors' spool, {status.audit_unexported} waiting for the "
        "syslog export (the assembler moves and sends them; docs/audit.md)",
    ]
    for failure in status.failures:
        lines.append(f"  failed {failure.at:%Y-%m-%d %H:%M:%S} study {failure.ref}: {failure.error}")
    letters = sum(status.dead_letters.values())
    lines.append(f"dead letters waiting: {letters}" + (
        " (" + ", ".join(f"{stage} {n}" for stage, n in sorted(status.dead_letters.items())) + "; "
        "`hilum dead-letters list`, then `hilum dead-letters replay`)" if letters else ""))
    dead = sum(status.dead_deliveries.values())
    lines.append(f"deliveries given up on: {dead}" + (
        " (" + ", ".join(f"{name} {n}" for name, n in sorted(status.dead_deliveries.items())) + "; "
        "`hilum publish list --state dead`, then `hilum publish replay`)" if dead else ""))
    return lines


def _counts(session: Session, stmt: Select[str, int]) -> dict[str, int]:
    """A grouped count as {group: count}."""
    return dict(session.execute(stmt).all())


def _duration(seconds: float) -> str:
    """"42 s", "7 min", "3.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
