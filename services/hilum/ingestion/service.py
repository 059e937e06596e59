"""Ingestion's one implementation: validate, store, record (with a FHIR ImagingStudy), then enqueue inference.

Both doors call it: the gRPC SubmitInstances method and the Celery task on the "ingestion" queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import repository
from hilum.common.fhir.imaging_study import imaging_study_json
from hilum.common.logs import study_ref
from hilum.common.object_store import ObjectStore, dicom_key
from hilum.ingestion.validation import RejectedInstance, validate_instance
from hilum.v1 import ingestion_pb2, messages_pb2

log = logging.getLogger(__name__)

# Frontal views are analysed first; the findings model is trained on PA/AP images.
_VIEW_PRIORITY = {"PA": 0, "AP": 1}


@dataclass(frozen=True)
class IncomingInstance:
    """A DICOM file as received: a PHI-free label (e.g. file name) and its bytes."""

    label: str
    content: bytes


class Ingestion:
    """Accepts DICOM instances into Hilum and starts the pipeline for each study that needs it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        enqueue_inference: Callable[[messages_pb2.StudyReference], None],
        patient_identifier_system: str,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._enqueue_inference = enqueue_inference
        self._patient_identifier_system = patient_identifier_system

    def accept(self, instances: Iterable[IncomingInstance]) -> ingestion_pb2.SubmitInstancesResponse:
        """Validate and store each instance, then enqueue inference once per study that needs it.

        A rejected instance is recorded with its reason and never stops the others.
        """
        response = ingestion_pb2.SubmitInstancesResponse()
        touched: dict[str, bool] = {}  # study uid -> gained a new instance in this call
        for incoming in instances:
            result = self._accept_one(incoming)
            response.results.append(result)
            if result.accepted:
                uid = result.study_instance_uid
                touched[uid] = touched.get(uid, False) or not result.duplicate
        for uid, gained in touched.items():
            reference = self._update_study(uid, gained)
            if reference is not None:
                self._enqueue_inference(reference)
                response.enqueued_study_instance_uids.append(uid)
                log.info("inference enqueued", extra={"study_ref": study_ref(uid)})
        return response

    def _accept_one(self, incoming: IncomingInstance) -> ingestion_pb2.InstanceResult:
        result = ingestion_pb2.InstanceResult(label=incoming.label)
        try:
            valid = validate_instance(incoming.content)
        except RejectedInstance as rejected:
            code_name = ingestion_pb2.RejectionCode.Name(rejected.code)
            with self._sessions.begin() as session:
                repository.record_rejection(session, incoming.label, code_name, rejected.reason)
            result.rejection.code = rejected.code
            result.rejection.reason = rejected.reason
            log.info("instance rejected", extra={"code": code_name})
            return result
        result.accepted = True
        result.study_instance_uid = valid.study_instance_uid
        result.sop_instance_uid = valid.sop_instance_uid
        try:
            with self._sessions.begin() as session:
                if repository.has_instance(session, valid.sop_instance_uid):
                    result.duplicate = True
                    return result
                key = dicom_key(valid.study_instance_uid, valid.series_instance_uid, valid.sop_instance_uid)
                self._store.put(key, incoming.content)  # the object is durable before the row says it exists
                repository.ensure_study(
                    session,
                    valid.study_instance_uid,
                    valid.patient,
                    valid.study_started,
                    valid.accession_number,
                    valid.study_description,
                )
                repository.add_instance(session, valid.study_instance_uid, valid.instance_info(key))
        except IntegrityError:  # the same instance arrived concurrently and was stored by the other call
            result.duplicate = True
        return result

    def _update_study(self, uid: str, gained_instances: bool) -> messages_pb2.StudyReference | None:
        """Rebuild the study's ImagingStudy if it gained instances; return the StudyReference to enqueue,
        or None when the study is already reported and nothing new came.
        """
        with self._sessions.begin() as session:
            row = repository.get_study(session, uid)
            study = repository.study_info(session, uid)
            assert row is not None and study is not None
            if gained_instances:
                repository.set_imaging_study(session, uid, imaging_study_json(study, self._patient_identifier_system))
            reported = row.state == repository.state_name(ingestion_pb2.StudyState.STUDY_STATE_REPORTED)
            if reported and not gained_instances:
                return None
            repository.restart_study(session, uid)
            instances = sorted(
                study.instances,
                key=lambda i: (_VIEW_PRIORITY.get(i.view_position.upper(), 9), i.series_number or 0,
                               i.instance_number or 0),
            )
            reference = messages_pb2.StudyReference(
                study_instance_uid=uid, object_keys=[i.object_key for i in instances]
            )
            reference.received_at.FromDatetime(row.received_at)
            return reference

    def submit(self, request: ingestion_pb2.SubmitInstancesRequest) -> ingestion_pb2.SubmitInstancesResponse:
        """The gRPC door: instances sent inline."""
        return self.accept(IncomingInstance(label=i.label, content=i.content) for i in request.instances)

    def accept_spooled(self, spooled: messages_pb2.SpooledInstances) -> ingestion_pb2.SubmitInstancesResponse:
        """The queue door: instances a listener already wrote to the object store's spool.

        Spool files are removed once each is stored or its rejection recorded; a redelivery after a
        crash finds the ones not yet done.
        """
        present = [key for key in spooled.spool_keys if self._store.exists(key)]
        response = self.accept(
            IncomingInstance(label=key.rsplit("/", 1)[-1], content=self._store.get(key)) for key in present
        )
        for key in present:
            self._store.delete(key)
        return response

    def status(self, uid: str) -> ingestion_pb2.StudyStatus:
        """Where the study stands, with its publish result once reported."""
        with self._sessions() as session:
            row = repository.get_study(session, uid)
            if row is None:
                return ingestion_pb2.StudyStatus(study_instance_uid=uid)
            status = ingestion_pb2.StudyStatus(
                study_instance_uid=uid,
                state=repository.state_value(row.state),
                instance_count=len(repository.instances_of(session, uid)),
                error=row.error,
                imaging_study_json=row.imaging_study,
            )
            report = repository.latest_report(session, uid)
            if report is not None:
                status.result.CopyFrom(messages_pb2.PublishResult.FromString(report.payload))
            return status
