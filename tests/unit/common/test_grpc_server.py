"""The shared gRPC plumbing on real loopback servers: health, its plaintext port, TLS, graceful shutdown, and stage
errors as status codes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.grpc_server import StartedServer, channel_options, create_server, is_serving
from hilum.common.polling import wait_until
from hilum.common.settings import GrpcSection
from hilum.common.study import PatientInfo
from hilum.priors.grpc_api import PriorsServicer
from hilum.priors.service import Priors
from hilum.runtime.ports import free_port
from hilum.v1 import messages_pb2, priors_pb2_grpc
from tests.helpers import record_study
from tests.unit.common.tls_certs import TlsFiles, write_tls_files

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


# --- TLS, the plaintext health port and graceful shutdown ---

SLOW = "/hilum.test.Slow/Wait"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
AddServicers = Callable[[grpc.Server], None]
Serve = Callable[[GrpcSection, AddServicers], tuple[str, StartedServer]]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Starts servers with a section on free loopback ports, and stops them after the test."""
    started: list[StartedServer] = []

    def start(section: GrpcSection, add_servicers: AddServicers = lambda _srv: None) -> tuple[str, StartedServer]:
        address = f"127.0.0.1:{free_port()}"
        server = create_server(address, [SERVICE], add_servicers, max_message_bytes=1024, section=section)
        started.append(server)
        return address, server

    yield start
    for server in started:
        server.stop(None)


def _slow_service(entered: threading.Event, release: threading.Event) -> AddServicers:
    """A method (bytes in, bytes out) that answers only once release is set: an in-flight call to drain."""

    def wait(_request: bytes, _context: grpc.ServicerContext) -> bytes:
        entered.set()
        release.wait(10)
        return b"done"

    handler = grpc.method_handlers_generic_handler(
        "hilum.test.Slow", {"Wait": grpc.unary_unary_rpc_method_handler(wait)})
    return lambda server: server.add_generic_rpc_handlers((handler,))


def _health(address: str, service: str = SERVICE) -> int:
    """The status the health service at address reports for service, over plaintext."""
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return int(response.status)


def test_a_tls_server_serves_a_client_that_checks_it_against_the_ca(serve: Serve, tls: TlsFiles) -> None:
    address, _ = serve(tls.server())
    assert is_serving(address, SERVICE, section=tls.client())
    # The server certificate names 127.0.0.1 and localhost: both check out.
    assert is_serving(address.replace("127.0.0.1", "localhost"), SERVICE, section=tls.client())


def test_a_plaintext_client_cannot_call_a_tls_port(serve: Serve, tls: TlsFiles) -> None:
    address, _ = serve(tls.server())
    with pytest.raises(grpc.RpcError) as refused:
        _health(address)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert is_serving(address, section=tls.client())


def test_a_client_refuses_a_server_its_ca_did_not_sign(serve: Serve, tls: TlsFiles, tmp_path: Path) -> None:
    address, _ = serve(tls.server())
    other = write_tls_files(tmp_path / "other", ca_name="Another CA")
    assert not is_serving(address, section=other.client(), timeout_s=2)


def test_mutual_tls_refuses_a_client_without_a_certificate_and_accepts_one_with(
    serve: Serve, tls: TlsFiles, tmp_path: Path
) -> None:
    address, _ = serve(tls.server(require_client_cert=True))
    assert not is_serving(address, section=tls.client(), timeout_s=2)
    assert is_serving(address, SERVICE, section=tls.client(with_cert=True))
    other = write_tls_files(tmp_path / "other", ca_name="Another CA")
    foreign_cert = GrpcSection(tls_ca_file=tls.ca, tls_cert_file=other.client_cert, tls_key_file=other.client_key,
                               tls_require_client_cert=True)
    assert not is_serving(address, section=foreign_cert, timeout_s=2)


def test_the_health_port_answers_plaintext_while_the_service_port_is_tls(serve: Serve, tls: TlsFiles) -> None:
    health_port = free_port()
    address, _ = serve(tls.server(require_client_cert=True, health_port=health_port))
    health_address = f"127.0.0.1:{health_port}"
    assert is_serving(health_address) and is_serving(health_address, SERVICE)
    assert not is_serving(address, timeout_s=2)
    assert is_serving(address, SERVICE, section=tls.client(with_cert=True))


def test_the_health_port_carries_only_the_health_service(serve: Serve) -> None:
    health_port = free_port()
    release = threading.Event()
    release.set()
    address, _ = serve(GrpcSection(health_port=health_port), _slow_service(threading.Event(), release))
    with grpc.insecure_channel(address) as channel:
        assert channel.unary_unary(SLOW)(b"", timeout=5) == b"done"
    with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel, pytest.raises(grpc.RpcError) as missing:
        channel.unary_unary(SLOW)(b"", timeout=5)
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_both_ports_report_the_same_health(serve: Serve) -> None:
    health_port = free_port()
    address, server = serve(GrpcSection(health_port=health_port))
    server.health.set(SERVICE, NOT_SERVING)
    assert _health(address) == _health(f"127.0.0.1:{health_port}") == NOT_SERVING


def test_on_shutdown_the_health_port_reports_not_serving_while_calls_drain(serve: Serve) -> None:
    entered, release = threading.Event(), threading.Event()
    health_port = free_port()
    health_address = f"127.0.0.1:{health_port}"
    address, server = serve(GrpcSection(health_port=health_port), _slow_service(entered, release))
    with grpc.insecure_channel(address) as channel:
        in_flight = channel.unary_unary(SLOW).future(b"", timeout=10)
        assert entered.wait(5)
        stopping = threading.Thread(target=server.stop, args=(10.0,))
        stopping.start()
        wait_until(lambda: _health(health_address) == NOT_SERVING, 5, 0.02, "the health port to say NOT_SERVING")
        assert _health(health_address, "") == NOT_SERVING
        assert not is_serving(address)  # the service port takes no new calls
        assert stopping.is_alive()  # still draining the call in flight
        release.set()
        assert in_flight.result() == b"done"
        stopping.join(5)
    assert not stopping.is_alive()
    assert not is_serving(health_address, timeout_s=0.5)  # closed once the service port has drained


def test_a_certificate_without_its_key_is_refused_before_anything_binds(tls: TlsFiles) -> None:
    port = free_port()
    with pytest.raises(ValueError, match="HILUM_GRPC__TLS_CERT_FILE and HILUM_GRPC__TLS_KEY_FILE must be set together"):
        create_server(f"127.0.0.1:{port}", [], lambda _srv: None, max_message_bytes=1024,
                      section=GrpcSection(tls_cert_file=tls.server_cert))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_a_taken_health_port_fails_and_frees_the_service_port() -> None:
    address = f"127.0.0.1:{free_port()}"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        health_port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"cannot bind gRPC server to 127.0.0.1:{health_port}"):
            create_server(address, [], lambda _srv: None, max_message_bytes=1024,
                          section=GrpcSection(health_port=health_port))
    create_server(address, [], lambda _srv: None, max_message_bytes=1024).stop(None)
