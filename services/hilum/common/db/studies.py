"""Studies and their instances: what ingestion records, where each study stands, and who its prior is."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from hilum.common import study_state
from hilum.common.db.models import InstanceRow, StudyRow, stored_utc
from hilum.common.study import InstanceHeader, InstanceInfo, StudyInfo

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class StudyNotFound(LookupError):
    """A stage was handed a study Hilum has no record of."""


def get_study(session: Session, uid: str) -> StudyRow | None:
    """The study's row, or None when Hilum never accepted an instance of it."""
    return session.get(StudyRow, uid)


def require_study(session: Session, uid: str) -> StudyRow:
    """The study's row; raises StudyNotFound when there is none."""
    row = session.get(StudyRow, uid)
    if row is None:
        raise StudyNotFound("study not found in Hilum's store")
    return row


def ensure_study(session: Session, header: InstanceHeader, comparison_only: bool = False,
                 trace_context: str = "") -> StudyRow:
    """The study row of header's study, created in state RECEIVED on first sight (comparison-only when it is a prior
    fetched for comparison; a study keeps what it was created as), with the trace its first instance came in on."""
    row = session.get(StudyRow, header.study_instance_uid)
    if row is None:
        row = StudyRow(
            study_instance_uid=header.study_instance_uid,
            patient=header.patient,
            started=header.study_started,
            accession_number=header.accession_number,
            description=header.study_description,
            placer_order_number=header.placer_order_number,
            state=study_state.name_of(study_state.RECEIVED),
            error="",
            comparison_only=comparison_only,
            trace_context=trace_context,
        )
        session.add(row)
        session.flush()
    return row


def add_instance(session: Session, study_instance_uid: str, info: InstanceInfo, content_sha256: str = "") -> None:
    """Record a stored instance (info.object_key names where it is; content_sha256 is of its bytes)."""
    spacing = info.pixel_spacing_mm
    session.add(InstanceRow(
        **_same_named(InstanceInfo, info, besides=("pixel_spacing_mm",)),
        study_instance_uid=study_instance_uid,
        content_sha256=content_sha256,
        spacing_row_mm=spacing[0] if spacing else None,
        spacing_column_mm=spacing[1] if spacing else None,
    ))
    session.flush()


def stored_instance(session: Session, sop_instance_uid: str) -> InstanceRow | None:
    """The stored instance with this SOP Instance UID, or None."""
    return session.get(InstanceRow, sop_instance_uid)


def images_restored(session: Session, uid: str) -> None:
    """An instance purged under the retention schedule was received and stored again: the study has images."""
    row = get_study(session, uid)
    if row is not None:
        row.images_purged_at = None


def study_of_series(session: Session, series_instance_uid: str) -> str | None:
    """The Study Instance UID a series is stored under, or None when no instance of it is stored."""
    stmt = select(InstanceRow.study_instance_uid).where(InstanceRow.series_instance_uid == series_instance_uid)
    return session.scalars(stmt.limit(1)).first()


def count_instances(session: Session, uid: str) -> int:
    """How many instances of the study are stored."""
    return session.scalar(select(func.count()).where(InstanceRow.study_instance_uid == uid)) or 0


def set_imaging_study(session: Session, uid: str, imaging_study_json: str) -> None:
    """Keep the FHIR ImagingStudy (JSON) built from the instances received so far."""
    require_study(session, uid).imaging_study = imaging_study_json


def state(row: StudyRow) -> study_state.State:
    """The study's pipeline state."""
    return study_state.state_of(row.state)


def _set_state(row: StudyRow, new: study_state.State) -> None:
    """Store a state; the error is kept only while the study is FAILED."""
    row.state = study_state.name_of(new)
    if new != study_state.FAILED:
        row.error = ""


def advance(session: Session, uid: str, reached: study_state.State) -> None:
    """A stage finished: move the study forward to `reached` (never backwards, never out of FAILED)."""
    row = require_study(session, uid)
    _set_state(row, study_state.advanced(state(row), reached))


def restart(session: Session, uid: str) -> None:
    """New instances or a resubmission arrived: a failed study starts again from RECEIVED."""
    row = require_study(session, uid)
    _set_state(row, study_state.restarted(state(row)))


def fail(session: Session, uid: str, error: str) -> None:
    """A stage gave up on the study: FAILED with why (a study already reported keeps its report)."""
    row = session.get(StudyRow, uid)
    if row is None:
        return
    new = study_state.failed(state(row))
    _set_state(row, new)
    if new == study_state.FAILED:
        row.error = error


def mark_due(session: Session, uid: str, ready_at: datetime) -> None:
    """The study is to be handed to inference at ready_at (an arrival moves it later: the stability window)."""
    require_study(session, uid).ready_at = ready_at


def due_studies(session: Session, now: datetime, limit: int) -> list[StudyRow]:
    """Studies due to be handed to inference, earliest first; rows another assembler holds are skipped."""
    stmt = (
        select(StudyRow).where(StudyRow.ready_at.is_not(None), StudyRow.ready_at <= now)
        .order_by(StudyRow.ready_at).limit(limit).with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def stalled_studies(session: Session, moved_before: datetime, limit: int) -> list[StudyRow]:
    """Studies in flight, already handed on (not due), that no stage has moved since moved_before, oldest first;
    rows another assembler holds are skipped."""
    in_flight = [study_state.name_of(state) for state in study_state.IN_FLIGHT]
    stmt = (
        select(StudyRow).where(StudyRow.state.in_(in_flight), StudyRow.ready_at.is_(None),
                               StudyRow.updated_at < moved_before)
        .order_by(StudyRow.updated_at).limit(limit).with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def handed_on(session: Session, uid: str, seen_ready_at: datetime) -> bool:
    """Clear the study's due time if it is still the one seen (an instance that arrived meanwhile moved it,
    and then the study stays due). True when cleared.
    """
    stmt = (
        update(StudyRow).where(StudyRow.study_instance_uid == uid, StudyRow.ready_at == seen_ready_at)
        .values(ready_at=None).execution_options(synchronize_session=False)
    )
    result = session.execute(stmt)
    return isinstance(result, CursorResult) and result.rowcount == 1


def instances_of(session: Session, uid: str) -> list[InstanceRow]:
    """The study's instance rows in series, instance and SOP UID order."""
    stmt = select(InstanceRow).where(InstanceRow.study_instance_uid == uid).order_by(
        InstanceRow.series_number, InstanceRow.instance_number, InstanceRow.sop_instance_uid
    )
    return list(session.scalars(stmt))


def view_of_object(session: Session, object_key: str) -> str:
    """The View Position stored for the instance kept under object_key ("PA", "AP", ...); "" when unknown."""
    stmt = select(InstanceRow.view_position).where(InstanceRow.object_key == object_key).limit(1)
    return (session.scalars(stmt).first() or "").strip().upper()


def _same_named(record: type[DataclassInstance], row: object, *, besides: tuple[str, ...]) -> dict[str, Any]:
    """The record's dataclass fields read from the row's attributes of the same names (the columns are
    named after the fields), leaving out those in `besides`.
    """
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(record) if f.name not in besides}


def _instance_info(row: InstanceRow) -> InstanceInfo:
    """The typed record of a stored instance row (spacing is kept as two columns)."""
    spacing = (row.spacing_row_mm, row.spacing_column_mm)
    return InstanceInfo(
        **_same_named(InstanceInfo, row, besides=("pixel_spacing_mm",)),
        pixel_spacing_mm=(spacing[0], spacing[1]) if spacing[0] is not None and spacing[1] is not None else None,
    )


def study_info(session: Session, uid: str) -> StudyInfo | None:
    """The typed record of a stored study with its instances, or None if Hilum never accepted it."""
    row = session.get(StudyRow, uid)
    if row is None:
        return None
    instances = tuple(_instance_info(i) for i in instances_of(session, uid))
    return StudyInfo(**_same_named(StudyInfo, row, besides=("instances",)), instances=instances)


def require_study_info(session: Session, uid: str) -> StudyInfo:
    """The typed record of a stored study; raises StudyNotFound when there is none."""
    info = study_info(session, uid)
    if info is None:
        raise StudyNotFound("study not found in Hilum's store")
    return info


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


def received_since(row: StudyRow, now: datetime) -> float:
    """Seconds from the study's first instance to now (SQLite hands back naive UTC datetimes)."""
    return (now - stored_utc(row.received_at)).total_seconds()
