"""Records kept for the people who run Hilum: rejected instances in quarantine, and dead-lettered messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from hilum.common.db.models import DeadLetterRow, RejectionRow


class QuarantineStatus(StrEnum):
    """Where a rejected instance stands: held (bytes kept), released (accepted on a later try), deleted."""

    HELD = "held"
    RELEASED = "released"
    DELETED = "deleted"


def record_rejection(session: Session, label: str, code: str, reason: str, *, door: str = "",
                     object_key: str = "", content_sha256: str = "") -> RejectionRow:
    """Why an instance was refused (label is PHI-free, e.g. a file name; code a RejectionCode name), and
    where its original bytes are kept ("" when they are not); held in quarantine until resolved.
    """
    row = RejectionRow(label=label, code=code, reason=reason, door=door, object_key=object_key,
                       content_sha256=content_sha256, status=QuarantineStatus.HELD.value)
    session.add(row)
    session.flush()
    return row


def quarantined(session: Session, status: QuarantineStatus | None = QuarantineStatus.HELD) -> list[RejectionRow]:
    """Rejections in quarantine with the given status (None: all), oldest first."""
    stmt = select(RejectionRow).order_by(RejectionRow.id)
    if status is not None:
        stmt = stmt.where(RejectionRow.status == status.value)
    return list(session.scalars(stmt))


def resolve(session: Session, row: RejectionRow, status: QuarantineStatus, at: datetime) -> None:
    """Mark a quarantined rejection released or deleted."""
    row.status = status.value
    row.resolved_at = at


def record_dead_letter(session: Session, stage: str, study_instance_uid: str, error: str, payload: bytes) -> None:
    """A queue message that will not be retried, kept with its payload for replay."""
    session.add(DeadLetterRow(stage=stage, study_instance_uid=study_instance_uid, error=error, payload=payload))


def dead_letters(session: Session, *, stage: str | None = None, ids: Sequence[int] = (),
                 include_replayed: bool = False) -> list[DeadLetterRow]:
    """Dead letters, oldest first: those not yet replayed (all with include_replayed), of one stage or of the ids."""
    stmt = select(DeadLetterRow).order_by(DeadLetterRow.created_at, DeadLetterRow.id)
    if not include_replayed:
        stmt = stmt.where(DeadLetterRow.replayed_at.is_(None))
    if stage is not None:
        stmt = stmt.where(DeadLetterRow.stage == stage)
    if ids:
        stmt = stmt.where(DeadLetterRow.id.in_(ids))
    return list(session.scalars(stmt))
