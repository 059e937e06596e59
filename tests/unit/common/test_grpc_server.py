"""The shared gRPC plumbing on a real loopback server: health, and stage errors as status codes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime

import grpc
import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.grpc_server import channel_options, create_server, is_serving
from hilum.common.study import PatientInfo
from hilum.priors.grpc_api import PriorsServicer
from hilum.priors.service import Priors
from hilum.runtime.ports import free_port
from hilum.v1 import messages_pb2, priors_pb2_grpc
from tests.helpers import record_study

SERVICE = "hilum.v1.PriorsService"
PATIENT = PatientInfo(patient_id="G1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
MODEL = messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=True)


@pytest.fixture
def address(sqlite_sessions: sessionmaker[Session]) -> Iterator[str]:
    """A started server with the priors servicer and health, on a free loopback port."""
    address = f"127.0.0.1:{free_port()}"
    servicer = PriorsServicer(Priors(sqlite_sessions))
    server = create_server(
        address, [SERVICE], lambda srv: priors_pb2_grpc.add_PriorsServiceServicer_to_server(servicer, srv),
        max_message_bytes=4 * 1024 * 1024,
    )
    yield address
    server.stop(None)


@pytest.fixture
def stub(address: str) -> Iterator[priors_pb2_grpc.PriorsServiceStub]:
    with grpc.insecure_channel(address) as channel:
        yield priors_pb2_grpc.PriorsServiceStub(channel)


def _findings(uid: str) -> messages_pb2.StudyFindings:
    return messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid), model=MODEL,
        findings=[messages_pb2.Finding(code="effusion", display="Pleural effusion",
                                       state=messages_pb2.FindingState.FINDING_STATE_PRESENT)],
    )


def test_channel_options_set_both_message_limits() -> None:
    assert dict(channel_options(1234)) == {
        "grpc.max_send_message_length": 1234, "grpc.max_receive_message_length": 1234,
    }


def test_the_server_and_its_named_service_report_serving(address: str) -> None:
    assert is_serving(address)
    assert is_serving(address, SERVICE)


def test_an_unknown_service_is_not_serving(address: str) -> None:
    assert not is_serving(address, "hilum.v1.NoSuchService")


def test_a_closed_port_is_not_serving() -> None:
    assert not is_serving(f"127.0.0.1:{free_port()}", timeout_s=0.5)


def test_a_port_another_process_listens_on_cannot_be_bound() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"cannot bind gRPC server to 127.0.0.1:{port}"):
            create_server(f"127.0.0.1:{port}", [], lambda _srv: None, max_message_bytes=1024)


def test_a_second_server_on_a_port_a_server_holds_fails_instead_of_sharing(address: str) -> None:
    with pytest.raises(RuntimeError, match=f"cannot bind gRPC server to {address}"):
        create_server(address, [], lambda _srv: None, max_message_bytes=1024)


def test_a_result_passes_through(stub: priors_pb2_grpc.PriorsServiceStub,
                                 sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "8.1", PATIENT, datetime(2025, 1, 1))
    comparison = stub.Compare(_findings("8.1"), timeout=5)
    assert comparison.current.study.study_instance_uid == "8.1"
    assert [f.code for f in comparison.current.findings] == ["effusion"]
    assert not comparison.HasField("prior")


def test_a_permanent_error_is_failed_precondition(stub: priors_pb2_grpc.PriorsServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.Compare(_findings("8.404"), timeout=5)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert failed.value.details() == "study not found in Hilum's store"


def test_a_transient_error_is_unavailable(stub: priors_pb2_grpc.PriorsServiceStub,
                                          sqlite_sessions: sessionmaker[Session]) -> None:
    # The prior was received just now and has no findings yet: the comparison waits for it.
    record_study(sqlite_sessions, "8.2", PATIENT, datetime(2024, 1, 1))
    record_study(sqlite_sessions, "8.3", PATIENT, datetime(2025, 1, 1))
    with pytest.raises(grpc.RpcError) as waiting:
        stub.Compare(_findings("8.3"), timeout=5)
    assert waiting.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "still being analysed" in (waiting.value.details() or "")
