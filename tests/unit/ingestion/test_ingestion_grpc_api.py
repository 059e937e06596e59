"""Ingestion's gRPC door on a real loopback server: it stores and marks studies due; it never needs the
broker (the assembler hands studies on), so a broker outage cannot fail a submission."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import studies
from hilum.common.grpc_server import create_server
from hilum.common.object_store import ObjectStore
from hilum.common.queue import create_celery_app
from hilum.common.settings import HilumSettings, RedisSection
from hilum.ingestion.service import Ingestion
from hilum.ingestion.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc

MRN_SYSTEM = "urn:oid:1.2.3.4.5"
REJECTION = ingestion_pb2.RejectionCode


@pytest.fixture
def stub(sqlite_sessions: sessionmaker[Session],
         tmp_path: Path) -> Iterator[ingestion_pb2_grpc.IngestionServiceStub]:
    """A stub on a server whose Celery app points at a closed port: no broker at all."""
    ingestion = Ingestion(sqlite_sessions, ObjectStore(tmp_path / "objects"), MRN_SYSTEM)
    closed = HilumSettings(redis=RedisSection(url=f"redis://127.0.0.1:{free_port()}/0"))
    forward = WIRING.forwarder(create_celery_app(closed))
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [WIRING.grpc_service], lambda srv: WIRING.add_servicer(ingestion, forward, srv),
                           max_message_bytes=16 * 1024 * 1024)
    with grpc.insecure_channel(address) as channel:
        yield ingestion_pb2_grpc.IngestionServiceStub(channel)
    server.stop(None)


def _request(*paths: Path) -> ingestion_pb2.SubmitInstancesRequest:
    return ingestion_pb2.SubmitInstancesRequest(
        instances=[ingestion_pb2.DicomInstance(label=p.name, content=p.read_bytes()) for p in paths])


def test_accepted_and_rejected_instances_are_answered_without_a_broker(
    stub: ingestion_pb2_grpc.IngestionServiceStub, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    good = write_study(dataclasses.replace(SAMPLE_STUDIES[0], rows=160, columns=128), tmp_path / "good")
    bad = write_rejectable_inputs(tmp_path / "bad")
    response = stub.SubmitInstances(_request(bad["not_dicom"], good), timeout=30)
    rejected, accepted = response.results
    assert rejected.rejection.code == REJECTION.REJECTION_CODE_NOT_DICOM and rejected.quarantine_id > 0
    assert accepted.accepted and not accepted.duplicate
    with sqlite_sessions() as session:
        row = studies.require_study(session, accepted.study_instance_uid)
        assert row.ready_at is not None  # due: the assembler hands it on
    status = stub.GetStudyStatus(
        ingestion_pb2.GetStudyStatusRequest(study_instance_uid=accepted.study_instance_uid), timeout=10)
    assert status.state == study_state.RECEIVED and status.instance_count == 1


def test_status_of_an_unknown_study_is_empty(stub: ingestion_pb2_grpc.IngestionServiceStub) -> None:
    status = stub.GetStudyStatus(ingestion_pb2.GetStudyStatusRequest(study_instance_uid="1.2.3"), timeout=10)
    assert status.state == study_state.StudyState.STUDY_STATE_UNSPECIFIED and status.instance_count == 0


def test_a_store_that_fails_answers_unavailable_without_the_database_s_words(
        stub: ingestion_pb2_grpc.IngestionServiceStub, sqlite_sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """The sender is told to send again later, and nothing of the failing statement (it quotes UIDs) reaches it."""
    spec = dataclasses.replace(SAMPLE_STUDIES[0], rows=160, columns=128)
    with sqlite_sessions.begin() as session:
        session.execute(text("DROP TABLE instances"))  # as if the database were gone
    with pytest.raises(grpc.RpcError) as failed:
        stub.SubmitInstances(_request(write_study(spec, tmp_path / "in")), timeout=30)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failed.value.details() == "unexpected OperationalError; try again later"
