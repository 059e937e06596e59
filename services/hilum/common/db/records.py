"""Records kept for the people who run Hilum: rejected instances and dead-lettered queue messages."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hilum.common.db.models import DeadLetterRow, RejectionRow


def record_rejection(session: Session, label: str, code: str, reason: str) -> None:
    """Why an instance was refused (label is PHI-free, e.g. a file name; code a RejectionCode name)."""
    session.add(RejectionRow(label=label, code=code, reason=reason))


def record_dead_letter(session: Session, stage: str, study_instance_uid: str, error: str, payload: bytes) -> None:
    """A queue message that will not be retried, kept with its payload for replay."""
    session.add(DeadLetterRow(stage=stage, study_instance_uid=study_instance_uid, error=error, payload=payload))
