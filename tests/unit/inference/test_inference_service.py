"""Inference's core without a model server: what it refuses for good, and what it retries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import studies
from hilum.common.errors import PermanentError, TransientError
from hilum.common.object_store import ObjectStore
from hilum.common.study import PatientInfo
from hilum.inference.engine import FindingsEngine
from hilum.inference.labels import load_label_map
from hilum.inference.service import Inference
from hilum.runtime.ports import free_port
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2
from tests.helpers import REPO_ROOT, record_study


@pytest.fixture
def inference(sqlite_sessions: sessionmaker[Session], store: ObjectStore) -> Inference:
    """Inference whose Triton address has nothing listening."""
    labels = load_label_map(REPO_ROOT / "model_repository" / "cxr_findings")
    engine = FindingsEngine(f"127.0.0.1:{free_port()}", "cxr_findings", labels, timeout_s=2.0)
    return Inference(sqlite_sessions, store, engine)


def _reference(frontal: str) -> messages_pb2.StudyReference:
    return messages_pb2.StudyReference(study_instance_uid="1.2.3", frontal_object_key=frontal)


def test_a_study_without_a_frontal_view_fails_for_good(inference: Inference) -> None:
    with pytest.raises(PermanentError, match="no frontal image"):
        inference.infer(_reference(""))


def test_a_missing_stored_image_fails_for_good(inference: Inference) -> None:
    with pytest.raises(PermanentError, match="missing"):
        inference.infer(_reference("dicom/1.2.3/absent.dcm"))


def test_a_study_whose_images_were_purged_says_so(inference: Inference, sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "1.2.3", PatientInfo("P1", "HOSP", "", None, ""), None, view_positions=("PA",))
    with sqlite_sessions.begin() as session:
        studies.require_study(session, "1.2.3").images_purged_at = datetime.now(UTC)
    reference = _reference("dicom/1.2.3/purged.dcm")
    with pytest.raises(PermanentError, match="purged under the retention schedule"):
        inference.infer(reference)


def test_an_unreadable_image_fails_for_good(inference: Inference, store: ObjectStore) -> None:
    store.put("dicom/1.2.3/bad.dcm", b"not a DICOM file at all")
    with pytest.raises(PermanentError, match="unreadable"):
        inference.infer(_reference("dicom/1.2.3/bad.dcm"))


def test_an_unreachable_model_server_makes_the_study_wait_without_counting_against_its_retries(
    inference: Inference, store: ObjectStore, tmp_path: Path
) -> None:
    """Every refusal carries how long to wait (so the queue does not count it and the study never fails for it); after
    three failures the breaker opens and the study waits without Triton being asked."""
    path = write_study(dataclasses.replace(SAMPLE_STUDIES[0], rows=160, columns=128), tmp_path)
    store.put("dicom/1.2.3/frontal.dcm", path.read_bytes())
    waits = []
    for _ in range(4):
        with pytest.raises(TransientError, match="Triton unavailable") as refused:
            inference.infer(_reference("dicom/1.2.3/frontal.dcm"))
        waits.append(refused.value.retry_after_s)
    assert all(wait is not None and wait > 0 for wait in waits)
    assert "not being called" in str(refused.value)  # the fourth never reached the network
