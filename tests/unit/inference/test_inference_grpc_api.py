"""Inference's gRPC door on a real loopback server: bad references fail for good, an absent Triton is transient."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import results, studies
from hilum.common.grpc_server import create_server
from hilum.common.object_store import ObjectStore
from hilum.common.queue import create_celery_app
from hilum.common.settings import HilumSettings, RedisSection
from hilum.common.study import PatientInfo
from hilum.inference.engine import FindingsEngine
from hilum.inference.labels import load_label_map
from hilum.inference.service import Inference
from hilum.inference.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import inference_pb2_grpc, messages_pb2
from tests.helpers import REPO_ROOT, record_study

PATIENT = PatientInfo(patient_id="IG1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
UID = "51.1"


@pytest.fixture
def stub(sqlite_sessions: sessionmaker[Session], store: ObjectStore, redis_server: RedisServer,
         redis_client: redis_lib.Redis) -> Iterator[inference_pb2_grpc.InferenceServiceStub]:
    """A stub on a server whose engine points at a port where no Triton listens."""
    labels = load_label_map(REPO_ROOT / "model_repository" / "cxr_findings")
    engine = FindingsEngine(f"127.0.0.1:{free_port()}", "cxr_findings", labels, 1.0)
    inference = Inference(sqlite_sessions, store, engine)
    forward = WIRING.forwarder(create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url))))
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [WIRING.grpc_service], lambda srv: WIRING.add_servicer(inference, forward, srv),
                           max_message_bytes=4 * 1024 * 1024)
    with grpc.insecure_channel(address) as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)
    server.stop(None)
    engine.close()


def _infer_error(
    stub: inference_pb2_grpc.InferenceServiceStub, reference: messages_pb2.StudyReference
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failed:
        stub.Infer(reference, timeout=15)
    return failed.value


def _nothing_stored(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        row = studies.get_study(session, UID)
        assert row is not None
        return row.state == "RECEIVED" and results.load_findings(session, UID, "demo-untrained") is None


def test_a_reference_without_a_frontal_image_fails_for_good(
    stub: inference_pb2_grpc.InferenceServiceStub, sqlite_sessions: sessionmaker[Session]
) -> None:
    record_study(sqlite_sessions, UID, PATIENT, datetime(2025, 1, 1), view_positions=("LL",))
    error = _infer_error(stub, messages_pb2.StudyReference(study_instance_uid=UID,
                                                           lateral_object_key="dicom/51.1/1.dcm"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "frontal image" in (error.details() or "")
    assert _nothing_stored(sqlite_sessions)


def test_a_frontal_key_naming_a_missing_object_fails_for_good(
    stub: inference_pb2_grpc.InferenceServiceStub, sqlite_sessions: sessionmaker[Session]
) -> None:
    record_study(sqlite_sessions, UID, PATIENT, datetime(2025, 1, 1), view_positions=("PA",))
    error = _infer_error(stub, messages_pb2.StudyReference(study_instance_uid=UID,
                                                           frontal_object_key="dicom/51.1/1.dcm"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "missing" in (error.details() or "")
    assert _nothing_stored(sqlite_sessions)


def test_an_unreadable_stored_image_fails_for_good(
    stub: inference_pb2_grpc.InferenceServiceStub, sqlite_sessions: sessionmaker[Session], store: ObjectStore
) -> None:
    record_study(sqlite_sessions, UID, PATIENT, datetime(2025, 1, 1), view_positions=("PA",))
    store.put("dicom/51.1/1.dcm", b"not a DICOM object")
    error = _infer_error(stub, messages_pb2.StudyReference(study_instance_uid=UID,
                                                           frontal_object_key="dicom/51.1/1.dcm"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "unreadable" in (error.details() or "")


def test_a_readable_image_with_triton_unreachable_is_unavailable(
    stub: inference_pb2_grpc.InferenceServiceStub, sqlite_sessions: sessionmaker[Session], store: ObjectStore,
    tmp_path: Path, redis_client: redis_lib.Redis,
) -> None:
    record_study(sqlite_sessions, UID, PATIENT, datetime(2025, 1, 1), view_positions=("PA",))
    image = write_study(dataclasses.replace(SAMPLE_STUDIES[0], rows=256, columns=208), tmp_path / "in")
    store.put("dicom/51.1/1.dcm", image.read_bytes())
    error = _infer_error(stub, messages_pb2.StudyReference(study_instance_uid=UID,
                                                           frontal_object_key="dicom/51.1/1.dcm"))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "Triton unavailable" in (error.details() or "")
    assert _nothing_stored(sqlite_sessions)
    assert redis_client.llen("priors") == 0
