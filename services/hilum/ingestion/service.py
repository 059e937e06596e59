"""Ingestion's one implementation: accept, check identity, store and record each instance; mark studies due.

Every door calls it: gRPC SubmitInstances, the "ingestion" queue, the DICOM SCP, STOW-RS and the PACS
puller. An instance is durably stored before it is acknowledged. A study is not handed to inference
here: it is marked due (last arrival + the stability window) in the same transaction as its instance,
and the assembler (hilum.ingestion.assembly) hands due studies on, so a broker outage delays work but
never loses it. A rejected instance is kept in quarantine with its reason; it never affects another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.trail import AuditTrail
from hilum.common import study_state
from hilum.common.atomic_file import StagedFile
from hilum.common.db import records, results, studies
from hilum.common.db.models import InstanceRow, RejectionRow
from hilum.common.dicom.pixels import Radiograph
from hilum.common.fhir.audit_event import REFUSED_SUBTYPE, AuditAgent, AuditKind, AuditOutcome, AuditRecord
from hilum.common.fhir.imaging_study import imaging_study_json
from hilum.common.logs import study_ref
from hilum.common.model_inputs import ModelInputs, stage_model_inputs
from hilum.common.object_store import ObjectStore, dicom_key, quarantine_key
from hilum.common.study import InstanceHeader
from hilum.common.tracing import current_trace_context, mark_study, study_span
from hilum.ingestion.acceptance import AcceptanceRules, AcceptedInstance, RejectedInstance, accept_instance
from hilum.v1 import ingestion_pb2, messages_pb2

log = logging.getLogger(__name__)
Code = ingestion_pb2.RejectionCode


class Door(StrEnum):
    """The way an instance came in; recorded with a reject so an administrator knows whom to ask."""

    GRPC = "grpc"
    QUEUE = "queue"
    DIMSE = "dimse"
    STOW = "stow"
    PULL = "pull"
    RELEASE = "release"
    # A prior the priors stage fetched from a PACS (through the queue door): its study is comparison-only.
    PRIOR = "prior"


@dataclass(frozen=True)
class IncomingInstance:
    """A DICOM object as received: a PHI-free label (e.g. file name), its bytes, its door and its sender.

    affected_sop: on DIMSE, the C-STORE request's (Affected SOP Class UID, Affected SOP Instance UID),
    which the dataset itself must agree with.
    """

    label: str
    content: bytes
    door: Door = Door.GRPC
    affected_sop: tuple[str, str] | None = None
    # Who sent it, for the audit trail: the calling AE title (DIMSE) or client, and its network address; "": unknown.
    sender: str = ""
    address: str = ""


class QuarantineNotFound(LookupError):
    """No held quarantine entry has this id."""


class Ingestion:
    """Accepts DICOM instances into Hilum, keeps the rejected ones in quarantine, and marks studies due."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        patient_identifier_system: str,  # the naming system of PatientID in the FHIR Hilum emits
        rules: AcceptanceRules | None = None,
        stability_window: timedelta = timedelta(0),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: AuditTrail | None = None,
        make_inputs: Callable[[Radiograph], ModelInputs] | None = None,
    ) -> None:
        """make_inputs: makes the models' inputs from the door's decode of an image that may be a frontal view, kept
        beside it for inference (hilum.common.model_inputs); None: inference decodes every image itself."""
        self._sessions = sessions
        self._store = store
        self._patient_identifier_system = patient_identifier_system
        self._audit = audit or AuditTrail("ingestion", patient_system=patient_identifier_system)
        self._rules = rules or AcceptanceRules()
        self._stability_window = stability_window
        self._clock = clock
        self._inputs_at_door = None if make_inputs is None else partial(_inputs_or_none, make_inputs)

    def submit(self, request: ingestion_pb2.SubmitInstancesRequest,
               address: str = "") -> ingestion_pb2.SubmitInstancesResponse:
        """The gRPC door: instances sent inline, from `address` (the client's, for the audit trail)."""
        return self.accept(IncomingInstance(label=i.label, content=i.content, address=address)
                           for i in request.instances)

    def accept_spooled(self, spooled: messages_pb2.SpooledInstances) -> ingestion_pb2.SubmitInstancesResponse:
        """The queue door: instances a listener already wrote to the object store's spool.

        Spool files stay until release_spool, which the wiring calls after the task; a redelivery after
        a crash accepts them again, as duplicates.
        """
        present = [key for key in spooled.spool_keys if self._store.exists(key)]
        door = Door.PRIOR if spooled.comparison_only else Door.QUEUE
        return self.accept(
            IncomingInstance(label=key.rsplit("/", 1)[-1], content=self._store.get(key), door=door)
            for key in present
        )

    def release_spool(self, spooled: messages_pb2.SpooledInstances) -> None:
        """Remove spool files whose instances are stored or whose rejection is recorded."""
        for key in spooled.spool_keys:
            self._store.delete(key)

    def accept(self, instances: Iterable[IncomingInstance]) -> ingestion_pb2.SubmitInstancesResponse:
        """Accept and store each instance, or quarantine it with its reason; one result per instance, in
        order. A study that gains an instance (or is sent again before being reported) is marked due in the
        instance's own transaction.
        """
        response = ingestion_pb2.SubmitInstancesResponse()
        for incoming in instances:
            response.results.append(self._accept_one(incoming))
        return response

    def release(self, quarantine_id: int) -> ingestion_pb2.InstanceResult:
        """Run acceptance again on a held instance's original bytes (e.g. after an identity fix upstream).

        Accepted: stored like any instance (a study already reported gets no second report) and the entry
        is released. Refused again: the entry stays held with the new reason. Raises QuarantineNotFound
        when no held entry has this id.
        """
        with self._sessions() as session:
            row = session.get(RejectionRow, quarantine_id)
            if row is None or row.status != records.QuarantineStatus.HELD or not row.object_key:
                raise QuarantineNotFound(f"no held quarantine entry {quarantine_id}")
            incoming = IncomingInstance(label=row.label, content=self._store.get(row.object_key), door=Door.RELEASE)
        outcome = self._admit(incoming)
        with self._sessions.begin() as session:
            row = session.get(RejectionRow, quarantine_id)
            if row is None:
                raise QuarantineNotFound(f"no held quarantine entry {quarantine_id}")
            if isinstance(outcome, RejectedInstance):
                row.code, row.reason = Code.Name(outcome.code), outcome.reason
                return _rejected(incoming.label, outcome, quarantine_id)
            records.resolve(session, row, records.QuarantineStatus.RELEASED, self._clock())
        return outcome

    def delete_quarantined(self, quarantine_id: int) -> None:
        """Delete a held instance's bytes; the record of why it was refused stays."""
        with self._sessions.begin() as session:
            row = session.get(RejectionRow, quarantine_id)
            if row is None or row.status != records.QuarantineStatus.HELD:
                raise QuarantineNotFound(f"no held quarantine entry {quarantine_id}")
            if row.object_key:
                self._store.delete(row.object_key)
            records.resolve(session, row, records.QuarantineStatus.DELETED, self._clock())

    def _accept_one(self, incoming: IncomingInstance) -> ingestion_pb2.InstanceResult:
        """One instance, in a span of its own (a child of the door's call, where it is traced); a new study keeps that
        span's context, so that its trace goes on from there."""
        with study_span("ingest instance", door=incoming.door.value):
            outcome = self._admit(incoming)
            if isinstance(outcome, RejectedInstance):
                return self._quarantine(incoming, outcome)
            mark_study(outcome.study_instance_uid)
            return outcome

    def _admit(self, incoming: IncomingInstance) -> ingestion_pb2.InstanceResult | RejectedInstance:
        """Acceptance rules, then identity against what is stored, then store the object, record it and mark its
        study due, in one transaction: once the instance is recorded, its study is due.

        Returns the refusal instead of recording it, so release can keep one quarantine entry.
        """
        try:
            accepted = accept_instance(incoming.content, self._rules, incoming.affected_sop,
                                       self._inputs_at_door)
        except RejectedInstance as rejected:
            return rejected
        header, instance = accepted.header, accepted.header.instance
        sha256 = hashlib.sha256(incoming.content).hexdigest()
        result = ingestion_pb2.InstanceResult(
            label=incoming.label, accepted=True, study_instance_uid=header.study_instance_uid,
            sop_instance_uid=instance.sop_instance_uid, notes=list(accepted.notes),
        )
        key = dicom_key(header.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid)
        # Written and synced before the transaction, put in place inside it once the identity checks pass: the
        # database's write lock (SQLite's covers the whole file) is not held while 10 MB reach the disk.
        with (self._stage_image(key, incoming.content, instance.sop_instance_uid, sha256) as image,
              self._stage_inputs(key, accepted.model_inputs if image is not None else None) as inputs):
            try:
                return self._record(incoming, accepted, sha256, result, (key, image, inputs))
            except IntegrityError:
                # Another call committed this study's first instance, or this very instance, between our reads and
                # our writes: its rows are there now, so the same steps read them (a duplicate, or one more instance).
                return self._record(incoming, accepted, sha256, result, (key, image, inputs))

    def _record(
        self, incoming: IncomingInstance, accepted: AcceptedInstance, sha256: str, result: ingestion_pb2.InstanceResult,
        staged: tuple[str, StagedFile | None, StagedFile | None],
    ) -> ingestion_pb2.InstanceResult | RejectedInstance:
        """In one transaction: check identity against what is stored, put the staged image (and its models' inputs)
        in place, record it and its import in the audit trail, and mark its study due (a duplicate: the stored one
        stays; its study is marked due again unless reported). A study first seen through the prior door is a prior
        fetched for comparison (analysed, never reported)."""
        header, content = accepted.header, incoming.content
        instance = header.instance
        key, image, inputs = staged
        with self._sessions.begin() as session:
            # One look at the stored instance for both the conflict check and the duplicate: on PostgreSQL each
            # statement sees what committed before it, so a second look could find a row the first did not, and take
            # other bytes for a duplicate.
            stored = studies.stored_instance(session, instance.sop_instance_uid)
            conflict = _identity_conflict(session, header, sha256, stored)
            if conflict is not None:
                return conflict
            self._audit.record(session, self._import_record(incoming, header))
            if stored is not None:
                if not self._store.exists(stored.object_key):  # purged by retention: keep what is sent again
                    self._store.put(stored.object_key, content)
                    studies.images_restored(session, header.study_instance_uid)
                result.duplicate = True  # the same bytes again: idempotent success
                self._update_study(session, header.study_instance_uid, gained_instance=False)
                return result
            studies.ensure_study(session, header, incoming.door is Door.PRIOR, trace_context=current_trace_context())
            # The row claims the instance before its file is put in place: a call storing other bytes under the same
            # SOP Instance UID at once waits on this row and fails on its key (then reads it: a conflict), so it never
            # replaces the file this row describes.
            studies.add_instance(session, header.study_instance_uid,
                                 dataclasses.replace(instance, object_key=key), sha256)
            if image is None:  # stored when _admit looked (a resend), yet not now: written under the lock instead
                self._store.put(key, content)
            else:
                image.publish()  # durable before the commit makes the row visible
            if inputs is not None:
                _publish_inputs(inputs)
            self._update_study(session, header.study_instance_uid, gained_instance=True)
        return result

    def _stage_image(self, key: str, content: bytes, sop_instance_uid: str,
                     sha256: str) -> AbstractContextManager[StagedFile | None]:
        """The image written and synced, to put in place in the transaction; nothing for a resend of what is stored
        (the same bytes under its SOP Instance UID, their file present), which the transaction finds a duplicate: a
        PACS sending a study again costs no writes."""
        with self._sessions() as session:
            stored = studies.stored_instance(session, sop_instance_uid)
            if stored is not None and stored.content_sha256 == sha256 and self._store.exists(stored.object_key):
                return nullcontext()
        # Not kept in the page cache: inference reads the models' inputs kept beside the image, seldom the image.
        return self._store.stage(key, content, cached=False)

    def _stage_inputs(self, key: str, inputs: ModelInputs | None) -> AbstractContextManager[StagedFile | None]:
        """The models' inputs written beside the image's key, to publish with it; a failure to write them costs
        inference a decode, never the instance."""
        if inputs is None:
            return nullcontext()
        try:
            return stage_model_inputs(self._store, key, inputs)
        except OSError as error:
            log.warning("model inputs not kept", extra={"error": type(error).__name__})
            return nullcontext()

    def _quarantine(self, incoming: IncomingInstance, rejected: RejectedInstance) -> ingestion_pb2.InstanceResult:
        """Keep the original bytes and record why they were refused; the result says so."""
        sha256 = hashlib.sha256(incoming.content).hexdigest()
        key = quarantine_key(sha256)
        self._store.put(key, incoming.content)
        code_name = Code.Name(rejected.code)
        with self._sessions.begin() as session:
            row = records.record_rejection(session, incoming.label, code_name, rejected.reason,
                                           door=incoming.door.value, object_key=key, content_sha256=sha256)
            quarantine_id = row.id
            self._audit.record(session, AuditRecord(
                kind=AuditKind.IMPORT, subtypes=(REFUSED_SUBTYPE,), requestor=_sender(incoming),
                outcome=AuditOutcome.MINOR_FAILURE, outcome_text=rejected.reason,
                details=(("door", incoming.door.value), ("quarantine-id", str(quarantine_id)), ("code", code_name))))
        log.info("instance rejected", extra={"code": code_name, "door": incoming.door.value})
        return _rejected(incoming.label, rejected, quarantine_id)

    def _import_record(self, incoming: IncomingInstance, header: InstanceHeader) -> AuditRecord:
        """The audit record of an accepted instance: who sent it, through which door, of which patient and study."""
        return AuditRecord(kind=AuditKind.IMPORT, requestor=_sender(incoming),
                           patients=(self._audit.patient(header.patient),), study_uids=(header.study_instance_uid,),
                           details=(("door", incoming.door.value),
                                    ("sop-instance-uid", header.instance.sop_instance_uid)))

    def _update_study(self, session: Session, uid: str, gained_instance: bool) -> None:
        """In session: rebuild the study's ImagingStudy if it gained an instance, and mark it due for inference
        (after the stability window) unless it is reported and nothing new came. A failed study starts again.
        """
        row = studies.require_study(session, uid)
        if gained_instance:
            study = studies.require_study_info(session, uid)
            studies.set_imaging_study(session, uid, imaging_study_json(study, self._patient_identifier_system))
        if studies.state(row) == study_state.REPORTED and not gained_instance:
            return
        studies.restart(session, uid)
        studies.mark_due(session, uid, self._clock() + self._stability_window)
        log.info("study due for inference", extra={"study_ref": study_ref(uid)})

    def status(self, uid: str) -> ingestion_pb2.StudyStatus:
        """Where the study stands, with its publish result once reported."""
        with self._sessions() as session:
            row = studies.get_study(session, uid)
            if row is None:
                return ingestion_pb2.StudyStatus(study_instance_uid=uid)
            status = ingestion_pb2.StudyStatus(
                study_instance_uid=uid,
                state=studies.state(row),
                instance_count=studies.count_instances(session, uid),
                error=row.error,
                imaging_study_json=row.imaging_study,
            )
            report = results.latest_report(session, uid)
            if report is not None:
                status.result.CopyFrom(messages_pb2.PublishResult.FromString(report.payload))
            return status


def _publish_inputs(inputs: StagedFile) -> None:
    """Put the staged models' inputs in place; a failure costs inference a decode, never the instance."""
    try:
        inputs.publish()
    except OSError as error:
        log.warning("model inputs not kept", extra={"error": type(error).__name__})


def _identity_conflict(session: Session, header: InstanceHeader, sha256: str,
                       stored: InstanceRow | None) -> RejectedInstance | None:
    """Why storing this instance would merge what must stay apart, or None; stored: the instance stored under its SOP
    Instance UID, if any.

    A Study Instance UID held for another patient (PatientID + issuer), a Series Instance UID held in
    another study, or a SOP Instance UID held with other content: each is refused and quarantined, never
    merged or replaced.
    """
    study = studies.get_study(session, header.study_instance_uid)
    patient = header.patient
    if study is not None and (study.patient_id, study.patient_issuer) != (patient.patient_id, patient.issuer):
        return RejectedInstance(Code.REJECTION_CODE_IDENTITY_CONFLICT,
                                "The Study Instance UID is already held for another patient: the instance is "
                                "quarantined, never merged (check the patient identity at the sender)")
    series_study = studies.study_of_series(session, header.instance.series_instance_uid)
    if series_study is not None and series_study != header.study_instance_uid:
        return RejectedInstance(Code.REJECTION_CODE_IDENTITY_CONFLICT,
                                "The Series Instance UID is already held in another study: the instance is "
                                "quarantined, never merged")
    if stored is not None and stored.content_sha256 and stored.content_sha256 != sha256:
        return RejectedInstance(Code.REJECTION_CODE_INSTANCE_CONFLICT,
                                "The SOP Instance UID is already stored with different content: the new "
                                "object is quarantined, the stored one is kept unchanged")
    if stored is not None and stored.study_instance_uid != header.study_instance_uid:
        return RejectedInstance(Code.REJECTION_CODE_IDENTITY_CONFLICT,
                                "The SOP Instance UID is already held in another study: quarantined")
    return None


def _inputs_or_none(make_inputs: Callable[[Radiograph], ModelInputs], image: Radiograph) -> ModelInputs | None:
    """The models' inputs from the door's decode; None when they cannot be made (inference then decodes the image and
    says what fails: making them is no part of accepting it)."""
    try:
        return make_inputs(image)
    except Exception as error:  # a cache that cannot be filled never refuses an instance
        log.warning("model inputs not made at the door", extra={"error": type(error).__name__})
        return None


def _sender(incoming: IncomingInstance) -> AuditAgent:
    """Who sent an instance, as the audit names them: the sender, else the door it came through."""
    return AuditAgent(user_id=incoming.sender or f"{incoming.door.value}-door", requestor=True,
                      address=incoming.address)


def _rejected(label: str, rejected: RejectedInstance, quarantine_id: int) -> ingestion_pb2.InstanceResult:
    """The result of a refused instance, with its code, reason and quarantine entry."""
    return ingestion_pb2.InstanceResult(
        label=label, rejection=ingestion_pb2.Rejection(code=rejected.code, reason=rejected.reason),
        quarantine_id=quarantine_id,
    )
