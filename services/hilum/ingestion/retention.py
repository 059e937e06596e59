"""Retention: delete the stored images (PHI) of studies whose processing ended long ago; results stay.

`hilum purge images --older-than DAYS` runs it. A study qualifies when every instance of it arrived more than
DAYS ago, it rests REPORTED or FAILED with nothing due (no new instance or resubmission waiting) and no
delivery pending, and it has images not purged yet. Reports, findings, deliveries and the FHIR read store
are never touched; a later re-run of a purged study fails for want of its images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.trail import AuditTrail
from hilum.common import study_state
from hilum.common.db.models import DeliveryRow, InstanceRow, StudyRow
from hilum.common.destinations import DeliveryState
from hilum.common.fhir.audit_event import AuditKind, AuditRecord
from hilum.common.logs import study_ref
from hilum.common.model_inputs import drop_model_inputs
from hilum.common.object_store import ObjectStore

BATCH = 500  # studies per transaction: a large purge never holds one huge transaction or lock set


@dataclass(frozen=True)
class PurgedStudy:
    """One study whose stored images were deleted (or, in a dry run, would be).

    images: objects that were in the store; size_bytes: their total size.
    """

    study_instance_uid: str
    state: str  # REPORTED or FAILED
    received_at: datetime
    images: int
    size_bytes: int


def purge_images(sessions: sessionmaker[Session], store: ObjectStore, older_than: timedelta, now: datetime, *,
                 dry_run: bool = False, batch: int = BATCH, audit: AuditTrail | None = None) -> Iterator[PurgedStudy]:
    """Delete the stored images of each qualifying study and record when on the study, and in the audit trail (DICOM
    Study Deleted), one transaction per batch; yields each study once its batch is committed. dry_run: yields the
    same studies and changes nothing.

    Order: the objects are deleted first and the study is marked in the same transaction that selected (and
    locked) it, so a crash half-way leaves it unmarked and the next run deletes again (deletes are idempotent).
    """
    cutoff = now - older_than
    trail = audit or AuditTrail("retention")
    after = ""  # keyset over Study Instance UIDs: every run ends, dry or not, whatever was skipped
    while True:
        with sessions() if dry_run else sessions.begin() as session:
            rows = list(session.scalars(_candidates(cutoff, after, batch, lock=not dry_run)))
            if not rows:
                return
            keys = _object_keys(session, [row.study_instance_uid for row in rows])
            found = []
            for row in rows:
                study_keys = keys.get(row.study_instance_uid, [])
                sizes = [size for size in (_size(store, key) for key in study_keys) if size is not None]
                if not dry_run:
                    _delete(store, study_keys)
                    row.images_purged_at = now
                    trail.record(session, _deleted_record(trail, row, len(sizes), older_than))
                found.append(PurgedStudy(row.study_instance_uid, row.state, row.received_at, len(sizes), sum(sizes)))
        yield from found
        after = rows[-1].study_instance_uid


def _deleted_record(trail: AuditTrail, row: StudyRow, images: int, older_than: timedelta) -> AuditRecord:
    """The audit record of one study's images purged under the retention schedule."""
    return AuditRecord(kind=AuditKind.STUDY_DELETED, requestor=trail.itself, patients=(trail.patient(row.patient),),
                       study_uids=(row.study_instance_uid,),
                       details=(("images", str(images)), ("reason", f"retention: older than {older_than.days} days")))


def study_line(study: PurgedStudy, dry_run: bool) -> str:
    """One study for the operator: a hashed reference (the output lands in CronJob logs), never its UID."""
    verb = "would purge" if dry_run else "purged"
    return (f"{verb}  study {study_ref(study.study_instance_uid)}  {study.state:8s}  "
            f"received {study.received_at:%Y-%m-%d}  {study.images} images  {_megabytes(study.size_bytes)}")


def summary_line(studies: list[PurgedStudy], dry_run: bool) -> str:
    """"N studies, M images purged (X MB)", said as what would be purged in a dry run."""
    images, size = sum(s.images for s in studies), sum(s.size_bytes for s in studies)
    verb = "would be purged" if dry_run else "purged"
    return f"{len(studies)} studies, {images} images {verb} ({_megabytes(size)})" + (
        "; dry run, nothing changed" if dry_run else "")


def _candidates(cutoff: datetime, after: str, limit: int, *, lock: bool) -> Select[StudyRow]:
    """Studies whose images are due for purging, in UID order after `after`; locked rows (a new instance being
    recorded, the assembler at work) are skipped and left to the next run."""
    newer_instance = exists().where(InstanceRow.study_instance_uid == StudyRow.study_instance_uid,
                                    InstanceRow.received_at >= cutoff)
    # An instance that arrived after a purge (a late series) makes the study qualify again once it is old enough.
    stored_since_purge = exists().where(InstanceRow.study_instance_uid == StudyRow.study_instance_uid,
                                        InstanceRow.received_at > StudyRow.images_purged_at)
    # A pending PACS delivery still reads the analysed images' headers (the DICOM SR refers to them).
    pending_delivery = exists().where(DeliveryRow.study_instance_uid == StudyRow.study_instance_uid,
                                      DeliveryRow.status == DeliveryState.PENDING.value)
    stmt = (
        select(StudyRow)
        .where(
            StudyRow.state.in_(sorted(study_state.name_of(s) for s in study_state.TERMINAL)),
            StudyRow.ready_at.is_(None),
            StudyRow.received_at < cutoff,
            ~newer_instance,
            ~pending_delivery,
            or_(StudyRow.images_purged_at.is_(None), stored_since_purge),
            StudyRow.study_instance_uid > after,
        )
        .order_by(StudyRow.study_instance_uid)
        .limit(limit)
    )
    return stmt.with_for_update(skip_locked=True) if lock else stmt


def _object_keys(session: Session, uids: list[str]) -> dict[str, list[str]]:
    """The object keys of the studies' instances, by Study Instance UID."""
    keys: dict[str, list[str]] = {}
    stmt = select(InstanceRow.study_instance_uid, InstanceRow.object_key).where(
        InstanceRow.study_instance_uid.in_(uids))
    for uid, key in session.execute(stmt):
        keys.setdefault(uid, []).append(key)
    return keys


def _size(store: ObjectStore, key: str) -> int | None:
    """The object's size in bytes; None when it is not in the store (already purged, by a run that crashed)."""
    try:
        return store.path(key).stat().st_size
    except FileNotFoundError:
        return None


def _delete(store: ObjectStore, keys: list[str]) -> None:
    """Delete the objects, then their emptied folders (named by UIDs) up to the top folder ("dicom/")."""
    for key in keys:
        store.delete(key)
        drop_model_inputs(store, key)  # left by a study that never reached inference
    folders = {"/".join(key.split("/")[:depth]) for key in keys for depth in range(2, key.count("/") + 1)}
    for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):  # series folders before the study's
        try:
            store.path(folder).rmdir()
        except OSError:  # not empty (an instance being written there now) or already gone
            pass


def _megabytes(size_bytes: int) -> str:
    """A size for people: "12.3 MB" (decimal megabytes)."""
    return f"{size_bytes / 1_000_000:.1f} MB"
