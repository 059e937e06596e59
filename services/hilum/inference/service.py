"""Inference's one implementation: run the findings model on the study's frontal image and store the result.

Called by the gRPC Infer method and by the Celery task on the "inference" queue. Idempotent by
(Study Instance UID, model version): a redelivered message returns the findings stored first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.trail import AuditTrail
from hilum.common import study_state
from hilum.common.db import results, studies
from hilum.common.errors import PermanentError, TransientError
from hilum.common.fhir.audit_event import APPLICATION_ROLE, INFERENCE_SUBTYPE, AuditAgent, AuditKind, AuditRecord
from hilum.common.logs import study_ref
from hilum.common.model_inputs import drop_model_inputs, load_model_inputs
from hilum.common.object_store import ObjectStore
from hilum.inference.devices import device_findings
from hilum.inference.engine import FindingsEngine, ImageUnreadable, InferenceFailed, TritonUnavailable
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)


class Inference:
    """Runs Hilum's models for one study through the engine (which alone talks to Triton).

    Safe to call from several threads at once (the inference worker's threads pool): each call opens its own
    database sessions, the object store is stateless and the engine is thread-safe.
    """

    def __init__(self, sessions: sessionmaker[Session], store: ObjectStore, engine: FindingsEngine,
                 audit: AuditTrail | None = None) -> None:
        self._sessions = sessions
        self._store = store
        self._engine = engine
        self._audit = audit or AuditTrail("inference")

    def infer(self, study: messages_pb2.StudyReference) -> messages_pb2.StudyFindings:
        """Findings for the frontal image ingestion chose for the study."""
        key = study.frontal_object_key
        if not key:
            raise PermanentError("the study has no frontal image (PA or AP) to analyse")
        if not self._store.exists(key):
            with self._sessions() as session:
                row = studies.get_study(session, study.study_instance_uid)
                purged = row is not None and row.images_purged_at is not None
            if purged:
                raise PermanentError("the study's images were purged under the retention schedule (hilum purge images)")
            raise PermanentError("the stored image named by the study reference is missing")
        # The inputs the door made from its decode, else the image itself (decoded here).
        image = load_model_inputs(self._store, key, devices=bool(self._engine.devices_model)) or self._store.path(key)
        try:
            result = self._engine.analyse(image)
        except TritonUnavailable as exc:
            # Not the study's fault: it waits as long as Triton is away (the wait is not counted against the queue's
            # retries, so it never fails for it), asking again when the engine's circuit breaker lets a probe through.
            log.warning("Triton unavailable; the study waits", extra={
                "study_ref": study_ref(study.study_instance_uid), "retry_after_s": round(exc.retry_after_s, 1)})
            raise TransientError(f"Triton unavailable: {exc}", retry_after_s=exc.retry_after_s) from exc
        except ImageUnreadable as exc:
            raise PermanentError(f"image unreadable: {exc}") from exc
        except InferenceFailed as exc:  # the model refused the input or answered out of contract
            raise PermanentError(f"inference failed: {exc}") from exc
        path = self._store.path(key)
        devices = device_findings(self._engine.landmarks, result.landmarks, lambda: _header(path))
        findings = messages_pb2.StudyFindings(
            study=study, model=result.model, findings=result.findings, devices=devices, analysed_object_key=key,
            devices_model=result.devices_model,
        )
        # A prior fetched for comparison rests once analysed; any other study goes on to priors.
        reached = study_state.ANALYSED if study.comparison_only else study_state.INFERRED
        with self._sessions.begin() as session:
            stored = results.save_findings(session, findings)
            studies.advance(session, study.study_instance_uid, reached)
            self._audit.record(session, self._inference_record(session, study.study_instance_uid, result.model))
            image_keys = [row.object_key for row in studies.instances_of(session, study.study_instance_uid)]
        self._drop_kept_inputs(image_keys)
        log.info("findings stored", extra={"study_ref": study_ref(study.study_instance_uid),
                                           "model_version": stored.model.version})
        return stored

    def _drop_kept_inputs(self, image_keys: list[str]) -> None:
        """Delete the inputs the door kept for the study's images: the frontal view's are used (a redelivery decodes
        the image again), and another image's would never be. One that cannot be deleted costs disk, not the study."""
        for image_key in image_keys:
            try:
                drop_model_inputs(self._store, image_key)
            except OSError as error:
                log.warning("kept model inputs not deleted", extra={"error": type(error).__name__})

    def _inference_record(self, session: Session, uid: str, model: messages_pb2.ModelInfo) -> AuditRecord:
        """The audit record of one run of the models on a study's images: the model as an agent, with its version and
        whether its weights are demo weights."""
        row = studies.get_study(session, uid)
        weights = "demo, unvalidated" if model.demo_weights else "provisioned"
        return AuditRecord(
            kind=AuditKind.INFERENCE, subtypes=(INFERENCE_SUBTYPE,), requestor=self._audit.itself,
            agents=(AuditAgent(user_id=f"{model.name}:{model.version}", name=model.name, role=APPLICATION_ROLE),),
            patients=(self._audit.patient(row.patient),) if row is not None else (), study_uids=(uid,),
            details=(("model-version", model.version), ("weights", weights)),
        )


def _header(path: Path) -> Dataset:
    """The image's DICOM header, without its pixels (spacing and patient age for the device rules)."""
    try:
        return dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # decoded a moment ago: a header that now fails to parse is damage, not a model error
        raise PermanentError(f"image header unreadable: {type(exc).__name__}") from exc
