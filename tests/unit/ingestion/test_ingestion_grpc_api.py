"""Ingestion's gRPC door on a real loopback server: it stores, then hands ready studies to the inference queue."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pydicom
import pytest
import redis as redis_lib
from kombu.serialization import loads
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.grpc_server import create_server
from hilum.common.object_store import ObjectStore
from hilum.common.queue import create_celery_app
from hilum.common.settings import HilumSettings, RedisSection
from hilum.common.stage_wiring import Forward
from hilum.ingestion.service import Ingestion
from hilum.ingestion.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc, messages_pb2

MRN_SYSTEM = "urn:oid:1.2.3.4.5"
REJECTION = ingestion_pb2.RejectionCode


def _forwarder(redis_url: str) -> Forward[ingestion_pb2.SubmitInstancesResponse]:
    return WIRING.forwarder(create_celery_app(HilumSettings(redis=RedisSection(url=redis_url))))


def _serve(ingestion: Ingestion, forward: Forward[ingestion_pb2.SubmitInstancesResponse]) -> tuple[grpc.Server, str]:
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [WIRING.grpc_service], lambda srv: WIRING.add_servicer(ingestion, forward, srv),
                           max_message_bytes=16 * 1024 * 1024)
    return server, address


@pytest.fixture
def ingestion(sqlite_sessions: sessionmaker[Session], tmp_path: Path) -> Ingestion:
    return Ingestion(sqlite_sessions, ObjectStore(tmp_path / "objects"), MRN_SYSTEM)


@pytest.fixture
def stub(ingestion: Ingestion, redis_server: RedisServer,
         redis_client: redis_lib.Redis) -> Iterator[ingestion_pb2_grpc.IngestionServiceStub]:
    """A stub on a server whose forwarder publishes to the (flushed) private Redis."""
    server, address = _serve(ingestion, _forwarder(redis_server.url))
    with grpc.insecure_channel(address) as channel:
        yield ingestion_pb2_grpc.IngestionServiceStub(channel)
    server.stop(None)


def _sample(tmp_path: Path) -> Path:
    return write_study(dataclasses.replace(SAMPLE_STUDIES[0], rows=64, columns=52), tmp_path / "in")


def _request(*paths: Path) -> ingestion_pb2.SubmitInstancesRequest:
    return ingestion_pb2.SubmitInstancesRequest(
        instances=[ingestion_pb2.DicomInstance(label=p.name, content=p.read_bytes()) for p in paths]
    )


def _queued_reference(raw: bytes) -> tuple[str, messages_pb2.StudyReference]:
    """The task name and the StudyReference of one message as Celery left it on a Redis list."""
    envelope = json.loads(raw)
    body = base64.b64decode(envelope["body"])
    args, _kwargs, _embed = loads(body, envelope["content-type"], envelope["content-encoding"],
                                  accept={"application/x-msgpack"})
    return envelope["headers"]["task"], messages_pb2.StudyReference.FromString(args[0])


def test_an_accepted_instance_is_handed_to_the_inference_queue(
    stub: ingestion_pb2_grpc.IngestionServiceStub, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    path = _sample(tmp_path)
    response = stub.SubmitInstances(_request(path), timeout=10)
    [result] = response.results
    assert result.accepted and not result.duplicate and result.label == path.name
    assert result.study_instance_uid == pydicom.dcmread(path).StudyInstanceUID
    assert [r.study_instance_uid for r in response.ready_studies] == [result.study_instance_uid]
    assert redis_client.llen("inference") == 1
    task, reference = _queued_reference(redis_client.lindex("inference", 0))  # type: ignore[arg-type]
    assert task == "hilum.inference.run"
    assert reference == response.ready_studies[0]
    assert redis_client.llen("priors") == 0


def test_a_rejected_file_is_answered_and_nothing_is_queued(
    stub: ingestion_pb2_grpc.IngestionServiceStub, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    not_dicom = write_rejectable_inputs(tmp_path / "bad")["not_dicom"]
    response = stub.SubmitInstances(_request(not_dicom), timeout=10)
    [result] = response.results
    assert not result.accepted and result.label == not_dicom.name
    assert result.rejection.code == REJECTION.REJECTION_CODE_NOT_DICOM and result.rejection.reason
    assert list(response.ready_studies) == []
    assert redis_client.llen("inference") == 0


def test_status_of_a_submitted_study_is_received(
    stub: ingestion_pb2_grpc.IngestionServiceStub, tmp_path: Path
) -> None:
    [result] = stub.SubmitInstances(_request(_sample(tmp_path)), timeout=10).results
    status = stub.GetStudyStatus(
        ingestion_pb2.GetStudyStatusRequest(study_instance_uid=result.study_instance_uid), timeout=10
    )
    assert status.study_instance_uid == result.study_instance_uid
    assert status.state == study_state.RECEIVED and status.instance_count == 1
    assert json.loads(status.imaging_study_json)["resourceType"] == "ImagingStudy"
    assert not status.HasField("result")


def test_status_of_an_unknown_study_is_empty(stub: ingestion_pb2_grpc.IngestionServiceStub) -> None:
    status = stub.GetStudyStatus(ingestion_pb2.GetStudyStatusRequest(study_instance_uid="9.9.9"), timeout=10)
    assert status.study_instance_uid == "9.9.9" and status.instance_count == 0
    assert status.imaging_study_json == ""


def test_without_a_broker_the_instance_is_stored_and_handed_on_once_it_is_back(
    ingestion: Ingestion, tmp_path: Path
) -> None:
    broker_port = free_port()
    server, address = _serve(ingestion, _forwarder(f"redis://127.0.0.1:{broker_port}/0"))
    broker = RedisServer(broker_port, tmp_path / "broker", tmp_path / "broker.log")
    path = _sample(tmp_path)
    uid = pydicom.dcmread(path).StudyInstanceUID
    try:
        with grpc.insecure_channel(address) as channel:
            stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as unavailable:
                stub.SubmitInstances(_request(path), timeout=10)
            assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "inference" in (unavailable.value.details() or "")
            status = stub.GetStudyStatus(ingestion_pb2.GetStudyStatusRequest(study_instance_uid=uid), timeout=10)
            assert status.state == study_state.RECEIVED and status.instance_count == 1

            broker.start()
            response = stub.SubmitInstances(_request(path), timeout=10)
            [result] = response.results
            assert result.accepted and result.duplicate
            assert [r.study_instance_uid for r in response.ready_studies] == [uid]
            queue = redis_lib.Redis.from_url(broker.url)
            try:
                assert queue.llen("inference") == 1
                _task, reference = _queued_reference(queue.lindex("inference", 0))  # type: ignore[arg-type]
                assert reference.study_instance_uid == uid and reference.frontal_object_key
            finally:
                queue.close()
    finally:
        server.stop(None)
        broker.stop()
