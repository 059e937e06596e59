"""Queries and writes on Hilum's tables, in the terms the stages think in (studies, findings, reports)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hilum.common.db.models import (
    DeadLetterRow,
    FindingsRow,
    InstanceRow,
    RejectionRow,
    ReportRow,
    StudyRow,
)
from hilum.common.study import InstanceInfo, PatientInfo, StudyInfo
from hilum.v1 import ingestion_pb2, messages_pb2

StudyState = ingestion_pb2.StudyState
# States a study moves through; a stage never moves a study backwards (redeliveries are harmless).
_STATE_ORDER = [
    StudyState.STUDY_STATE_RECEIVED,
    StudyState.STUDY_STATE_INFERRED,
    StudyState.STUDY_STATE_COMPARED,
    StudyState.STUDY_STATE_REPORTED,
]


def state_name(state: ingestion_pb2.StudyState.ValueType) -> str:
    """The stored name of a state, e.g. "REPORTED"."""
    return StudyState.Name(state).removeprefix("STUDY_STATE_")


def state_value(name: str) -> ingestion_pb2.StudyState.ValueType:
    """The proto enum value of a stored state name."""
    return StudyState.Value(f"STUDY_STATE_{name}")


def get_study(session: Session, study_instance_uid: str) -> StudyRow | None:
    return session.get(StudyRow, study_instance_uid)


def ensure_study(session: Session, uid: str, patient: PatientInfo, started: datetime | None,
                 accession_number: str, description: str) -> StudyRow:
    """The study row for uid, created in state RECEIVED on first sight."""
    row = session.get(StudyRow, uid)
    if row is None:
        row = StudyRow(
            study_instance_uid=uid,
            patient_id=patient.patient_id,
            patient_issuer=patient.issuer,
            patient_name=patient.name,
            patient_birth_date=patient.birth_date,
            patient_sex=patient.sex,
            started=started,
            accession_number=accession_number,
            description=description,
            state=state_name(StudyState.STUDY_STATE_RECEIVED),
            error="",
        )
        session.add(row)
        session.flush()
    return row


def add_instance(session: Session, study_instance_uid: str, info: InstanceInfo) -> None:
    spacing = info.pixel_spacing_mm
    session.add(
        InstanceRow(
            sop_instance_uid=info.sop_instance_uid,
            study_instance_uid=study_instance_uid,
            sop_class_uid=info.sop_class_uid,
            series_instance_uid=info.series_instance_uid,
            series_number=info.series_number,
            instance_number=info.instance_number,
            modality=info.modality,
            view_position=info.view_position,
            rows=info.rows,
            columns=info.columns,
            spacing_row_mm=spacing[0] if spacing else None,
            spacing_column_mm=spacing[1] if spacing else None,
            object_key=info.object_key,
        )
    )
    session.flush()


def set_imaging_study(session: Session, uid: str, imaging_study_json: str) -> None:
    row = session.get(StudyRow, uid)
    if row is not None:
        row.imaging_study = imaging_study_json


def has_instance(session: Session, sop_instance_uid: str) -> bool:
    return session.get(InstanceRow, sop_instance_uid) is not None


def advance_state(session: Session, uid: str, state: ingestion_pb2.StudyState.ValueType) -> None:
    """Move the study forward to state (never backwards); FAILED is left only by a new submission."""
    row = session.get(StudyRow, uid)
    if row is None:
        return
    current = state_value(row.state)
    if current in _STATE_ORDER and _STATE_ORDER.index(current) >= _STATE_ORDER.index(state):
        return
    if current == StudyState.STUDY_STATE_FAILED:
        return
    row.state = state_name(state)
    row.error = ""


def restart_study(session: Session, uid: str) -> None:
    """A resubmitted failed study starts again from RECEIVED."""
    row = session.get(StudyRow, uid)
    if row is not None and row.state == state_name(StudyState.STUDY_STATE_FAILED):
        row.state = state_name(StudyState.STUDY_STATE_RECEIVED)
        row.error = ""


def fail_study(session: Session, uid: str, error: str) -> None:
    row = session.get(StudyRow, uid)
    if row is not None and row.state != state_name(StudyState.STUDY_STATE_REPORTED):
        row.state = state_name(StudyState.STUDY_STATE_FAILED)
        row.error = error


def instances_of(session: Session, uid: str) -> list[InstanceRow]:
    stmt = select(InstanceRow).where(InstanceRow.study_instance_uid == uid).order_by(
        InstanceRow.series_number, InstanceRow.instance_number, InstanceRow.sop_instance_uid
    )
    return list(session.scalars(stmt))


def study_info(session: Session, uid: str) -> StudyInfo | None:
    """The typed record of a stored study with its instances, or None if Hilum never accepted it."""
    row = session.get(StudyRow, uid)
    if row is None:
        return None
    instances = tuple(
        InstanceInfo(
            sop_instance_uid=i.sop_instance_uid,
            sop_class_uid=i.sop_class_uid,
            series_instance_uid=i.series_instance_uid,
            series_number=i.series_number,
            instance_number=i.instance_number,
            modality=i.modality,
            view_position=i.view_position,
            rows=i.rows,
            columns=i.columns,
            pixel_spacing_mm=(
                (i.spacing_row_mm, i.spacing_column_mm)
                if i.spacing_row_mm is not None and i.spacing_column_mm is not None
                else None
            ),
            object_key=i.object_key,
        )
        for i in instances_of(session, uid)
    )
    return StudyInfo(
        study_instance_uid=row.study_instance_uid,
        patient=PatientInfo(
            patient_id=row.patient_id,
            issuer=row.patient_issuer,
            name=row.patient_name,
            birth_date=row.patient_birth_date,
            sex=row.patient_sex,
        ),
        started=row.started,
        accession_number=row.accession_number,
        description=row.description,
        instances=instances,
    )


def find_prior(session: Session, study: StudyInfo) -> StudyRow | None:
    """The same patient's most recent study that started before this one, in Hilum's store."""
    if study.started is None:
        return None
    stmt = (
        select(StudyRow)
        .where(
            StudyRow.patient_id == study.patient.patient_id,
            StudyRow.patient_issuer == study.patient.issuer,
            StudyRow.study_instance_uid != study.study_instance_uid,
            StudyRow.started < study.started,
        )
        # Two studies at the same instant: the one received last is the prior, every time.
        .order_by(StudyRow.started.desc(), StudyRow.received_at.desc(), StudyRow.study_instance_uid.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def save_findings(session: Session, findings: messages_pb2.StudyFindings) -> messages_pb2.StudyFindings:
    """Store findings once per (study, model version); a repeat returns what was stored first."""
    uid = findings.study.study_instance_uid
    existing = load_findings(session, uid, findings.model.version)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            session.add(
                FindingsRow(
                    study_instance_uid=uid,
                    model_name=findings.model.name,
                    model_version=findings.model.version,
                    demo_weights=findings.model.demo_weights,
                    payload=findings.SerializeToString(),
                )
            )
    except IntegrityError:  # a concurrent redelivery stored first
        stored = load_findings(session, uid, findings.model.version)
        assert stored is not None
        return stored
    return findings


def load_findings(session: Session, uid: str, model_version: str) -> messages_pb2.StudyFindings | None:
    stmt = select(FindingsRow.payload).where(
        FindingsRow.study_instance_uid == uid, FindingsRow.model_version == model_version
    )
    payload = session.scalars(stmt).first()
    return messages_pb2.StudyFindings.FromString(payload) if payload is not None else None


def load_report(session: Session, uid: str, model_version: str) -> ReportRow | None:
    stmt = select(ReportRow).where(ReportRow.study_instance_uid == uid, ReportRow.model_version == model_version)
    return session.scalars(stmt).first()


def latest_report(session: Session, uid: str) -> ReportRow | None:
    stmt = select(ReportRow).where(ReportRow.study_instance_uid == uid).order_by(ReportRow.id.desc()).limit(1)
    return session.scalars(stmt).first()


def count_reports(session: Session, uid: str) -> int:
    return session.scalar(select(func.count()).where(ReportRow.study_instance_uid == uid)) or 0


def record_rejection(session: Session, label: str, code: str, reason: str) -> None:
    session.add(RejectionRow(label=label, code=code, reason=reason))


def record_dead_letter(session: Session, stage: str, study_instance_uid: str, error: str, payload: bytes) -> None:
    session.add(DeadLetterRow(stage=stage, study_instance_uid=study_instance_uid, error=error, payload=payload))


def is_recent(row: StudyRow, within: timedelta, now: datetime | None = None) -> bool:
    """Whether the study was received within the given time (its stages may still be running)."""
    received = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=UTC)
    return (now or datetime.now(UTC)) - received < within
