"""Stage results per (study, model version): stored findings and published reports, each written once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hilum.common.db.models import FindingsRow, ReportRow
from hilum.v1 import messages_pb2


def save_findings(session: Session, findings: messages_pb2.StudyFindings) -> messages_pb2.StudyFindings:
    """Store findings once per (study, model version); a repeat returns what was stored first."""
    uid, version = findings.study.study_instance_uid, findings.model.version
    existing = load_findings(session, uid, version)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            session.add(FindingsRow(
                study_instance_uid=uid, model_name=findings.model.name, model_version=version,
                demo_weights=findings.model.demo_weights, payload=findings.SerializeToString(),
            ))
    except IntegrityError:  # a concurrent redelivery stored first: its findings stand
        stored = load_findings(session, uid, version)
        if stored is None:
            raise
        return stored
    return findings


def load_findings(session: Session, uid: str, model_version: str) -> messages_pb2.StudyFindings | None:
    """The findings stored for (study, model version), or None."""
    stmt = select(FindingsRow.payload).where(
        FindingsRow.study_instance_uid == uid, FindingsRow.model_version == model_version
    )
    payload = session.scalars(stmt).first()
    return messages_pb2.StudyFindings.FromString(payload) if payload is not None else None


def load_report(session: Session, uid: str, model_version: str) -> ReportRow | None:
    """The report published for (study, model version), or None."""
    stmt = select(ReportRow).where(ReportRow.study_instance_uid == uid, ReportRow.model_version == model_version)
    return session.scalars(stmt).first()


def latest_report(session: Session, uid: str) -> ReportRow | None:
    """The study's most recently published report under any model version, or None."""
    stmt = select(ReportRow).where(ReportRow.study_instance_uid == uid).order_by(ReportRow.id.desc()).limit(1)
    return session.scalars(stmt).first()


def count_reports(session: Session, uid: str) -> int:
    """How many reports the study has (one per model version at most)."""
    return session.scalar(select(func.count()).where(ReportRow.study_instance_uid == uid)) or 0
