"""TLS credentials from the [grpc] settings: which settings mean TLS, the errors a half-done setup gets, and a
client_channel that reaches plaintext and TLS servers on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from hilum.common.grpc_tls import channel_credentials, client_channel, server_credentials
from hilum.common.settings import GrpcSection
from hilum.runtime.ports import free_port
from tests.unit.common.tls_certs import TlsFiles, write_tls_files


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("tls"))


def _health_server(credentials: grpc.ServerCredentials | None) -> Iterator[str]:
    """A bare grpc server with only the health service, plaintext or with credentials, on a free port."""
    address = f"127.0.0.1:{free_port()}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    if credentials is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, credentials)
    server.start()
    yield address
    server.stop(None)


@pytest.fixture
def plaintext_address() -> Iterator[str]:
    yield from _health_server(None)


@pytest.fixture
def tls_address(tls: TlsFiles) -> Iterator[str]:
    yield from _health_server(server_credentials(tls.server()))


def _check(channel: grpc.Channel) -> int:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    return int(response.status)


def test_no_tls_settings_mean_plaintext_on_both_sides() -> None:
    assert server_credentials(GrpcSection()) is None
    assert channel_credentials(GrpcSection()) is None


def test_a_certificate_and_key_make_server_credentials(tls: TlsFiles) -> None:
    assert isinstance(server_credentials(tls.server()), grpc.ServerCredentials)
    assert isinstance(server_credentials(tls.server(require_client_cert=True)), grpc.ServerCredentials)


def test_a_ca_alone_makes_a_tls_client(tls: TlsFiles) -> None:
    assert isinstance(channel_credentials(tls.client()), grpc.ChannelCredentials)


@pytest.mark.parametrize("only", ["cert", "key"])
def test_a_certificate_or_key_alone_is_a_clear_error(tls: TlsFiles, only: str) -> None:
    section = GrpcSection(tls_cert_file=tls.server_cert) if only == "cert" else GrpcSection(tls_key_file=tls.server_key)
    with pytest.raises(ValueError, match="HILUM_GRPC__TLS_CERT_FILE and HILUM_GRPC__TLS_KEY_FILE must be set together"):
        server_credentials(section)


def test_requiring_client_certificates_without_a_ca_is_a_clear_error(tls: TlsFiles) -> None:
    section = GrpcSection(tls_cert_file=tls.server_cert, tls_key_file=tls.server_key, tls_require_client_cert=True)
    with pytest.raises(ValueError, match="TLS_REQUIRE_CLIENT_CERT needs HILUM_GRPC__TLS_CA_FILE"):
        server_credentials(section)


def test_a_server_with_a_ca_but_no_certificate_is_a_clear_error(tls: TlsFiles) -> None:
    with pytest.raises(ValueError, match="the server has no certificate"):
        server_credentials(GrpcSection(tls_ca_file=tls.ca))


def test_a_client_asked_to_present_a_certificate_it_lacks_is_a_clear_error(tls: TlsFiles) -> None:
    with pytest.raises(ValueError, match="a client needs HILUM_GRPC__TLS_CERT_FILE"):
        channel_credentials(GrpcSection(tls_ca_file=tls.ca, tls_require_client_cert=True))


def test_a_missing_file_is_named_with_its_setting(tls: TlsFiles, tmp_path: Path) -> None:
    section = GrpcSection(tls_cert_file=tls.server_cert, tls_key_file=tmp_path / "absent.key")
    with pytest.raises(ValueError, match="cannot read HILUM_GRPC__TLS_KEY_FILE .*absent.key"):
        server_credentials(section)


def test_a_client_without_client_certificates_does_not_read_the_key(tls: TlsFiles, tmp_path: Path) -> None:
    # The server's own settings on a machine where the key is not readable: a client does not need it.
    section = GrpcSection(tls_cert_file=tls.server_cert, tls_key_file=tmp_path / "unreadable.key", tls_ca_file=tls.ca)
    assert isinstance(channel_credentials(section), grpc.ChannelCredentials)


def test_client_channel_without_a_section_is_plaintext(plaintext_address: str) -> None:
    with client_channel(plaintext_address, None, []) as channel:
        assert _check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_client_channel_speaks_tls_when_the_section_names_a_ca(tls_address: str, tls: TlsFiles) -> None:
    with client_channel(tls_address, tls.client(), []) as channel:
        assert _check(channel) == health_pb2.HealthCheckResponse.SERVING
    with client_channel(tls_address, GrpcSection(), []) as channel, pytest.raises(grpc.RpcError) as refused:
        _check(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
