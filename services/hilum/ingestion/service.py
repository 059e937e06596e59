"""Ingestion's one implementation: accept, store and record each instance; say which studies are ready.

Both doors call it: the gRPC SubmitInstances method and the Celery task on the "ingestion" queue.
It returns what it stored; handing the ready studies to inference is the wiring's job
(hilum.ingestion.wiring), so a study is only ever forwarded after its instances are durable.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import records, results, studies
from hilum.common.fhir.imaging_study import imaging_study_json
from hilum.common.logs import study_ref
from hilum.common.object_store import ObjectStore, dicom_key
from hilum.ingestion.acceptance import RejectedInstance, accept_instance
from hilum.ingestion.views import choose_views
from hilum.v1 import ingestion_pb2, messages_pb2

log = logging.getLogger(__name__)


class Door(StrEnum):
    """The way an instance came in; recorded with a reject so an administrator knows whom to ask."""

    GRPC = "grpc"
    QUEUE = "queue"
    DIMSE = "dimse"
    STOW = "stow"
    PULL = "pull"
    RELEASE = "release"


@dataclass(frozen=True)
class IncomingInstance:
    """A DICOM object as received: a PHI-free label (e.g. file name), its bytes and its door.

    affected_sop: on DIMSE, the C-STORE request's (Affected SOP Class UID, Affected SOP Instance UID),
    which the dataset itself must agree with.
    """

    label: str
    content: bytes
    door: Door = Door.GRPC
    affected_sop: tuple[str, str] | None = None


class Ingestion:
    """Accepts DICOM instances into Hilum and says which studies are ready for inference."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        patient_identifier_system: str,  # the naming system of PatientID in the FHIR Hilum emits
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._patient_identifier_system = patient_identifier_system

    def submit(self, request: ingestion_pb2.SubmitInstancesRequest) -> ingestion_pb2.SubmitInstancesResponse:
        """The gRPC door: instances sent inline."""
        return self.accept(IncomingInstance(label=i.label, content=i.content) for i in request.instances)

    def accept_spooled(self, spooled: messages_pb2.SpooledInstances) -> ingestion_pb2.SubmitInstancesResponse:
        """The queue door: instances a listener already wrote to the object store's spool.

        Spool files stay until release_spool, which the wiring calls once the ready studies are
        handed on: a redelivery after a crash accepts them again (as duplicates) and hands on again.
        """
        present = [key for key in spooled.spool_keys if self._store.exists(key)]
        return self.accept(
            IncomingInstance(label=key.rsplit("/", 1)[-1], content=self._store.get(key)) for key in present
        )

    def release_spool(self, spooled: messages_pb2.SpooledInstances) -> None:
        """Remove spool files whose instances are stored or whose rejection is recorded."""
        for key in spooled.spool_keys:
            self._store.delete(key)

    def accept(self, instances: Iterable[IncomingInstance]) -> ingestion_pb2.SubmitInstancesResponse:
        """Accept and store each instance; one ready StudyReference per study that gained instances
        (or that is resubmitted before it was reported). A rejected instance never stops the others.
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
                response.ready_studies.append(reference)
                log.info("study ready for inference", extra={"study_ref": study_ref(uid)})
        return response

    def _accept_one(self, incoming: IncomingInstance) -> ingestion_pb2.InstanceResult:
        result = ingestion_pb2.InstanceResult(label=incoming.label)
        try:
            header = accept_instance(incoming.content)
        except RejectedInstance as rejected:
            code_name = ingestion_pb2.RejectionCode.Name(rejected.code)
            with self._sessions.begin() as session:
                records.record_rejection(session, incoming.label, code_name, rejected.reason)
            result.rejection.code = rejected.code
            result.rejection.reason = rejected.reason
            log.info("instance rejected", extra={"code": code_name})
            return result
        instance = header.instance
        result.accepted = True
        result.study_instance_uid = header.study_instance_uid
        result.sop_instance_uid = instance.sop_instance_uid
        try:
            with self._sessions.begin() as session:
                if studies.has_instance(session, instance.sop_instance_uid):
                    result.duplicate = True
                    return result
                key = dicom_key(header.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid)
                self._store.put(key, incoming.content)  # the object is durable before the row says it exists
                studies.ensure_study(session, header)
                studies.add_instance(session, header.study_instance_uid, dataclasses.replace(instance, object_key=key))
        except IntegrityError:  # the same instance arrived concurrently and was stored by the other call
            result.duplicate = True
        return result

    def _update_study(self, uid: str, gained_instances: bool) -> messages_pb2.StudyReference | None:
        """Rebuild the study's ImagingStudy if it gained instances; return its StudyReference, or None
        when the study is already reported and nothing new came.
        """
        with self._sessions.begin() as session:
            row = studies.require_study(session, uid)
            study = studies.require_study_info(session, uid)
            if gained_instances:
                studies.set_imaging_study(session, uid, imaging_study_json(study, self._patient_identifier_system))
            if studies.state(row) == study_state.REPORTED and not gained_instances:
                return None
            studies.restart(session, uid)
            views = choose_views(study.instances)
            reference = messages_pb2.StudyReference(
                study_instance_uid=uid,
                frontal_object_key=views.frontal.object_key if views.frontal else "",
                lateral_object_key=views.lateral.object_key if views.lateral else "",
            )
            reference.received_at.FromDatetime(row.received_at)
            return reference

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
