"""Who may call the gRPC services, on real servers: a bearer token on every call but health's, and no listening
beyond loopback without TLS and a token or client certificates."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.grpc_access import ExposureRefused, check_exposure
from hilum.common.grpc_server import StartedServer, create_server, is_serving
from hilum.common.grpc_tls import client_channel
from hilum.common.object_store import ObjectStore
from hilum.common.settings import GrpcSection
from hilum.ingestion.client import IngestionClient
from hilum.ingestion.grpc_api import IngestionServicer
from hilum.ingestion.service import Ingestion
from hilum.runtime.ports import free_port
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.unit.common.tls_certs import TlsFiles, write_tls_files

TOKEN = "0123456789abcdef0123456789abcdef"
SERVICE = "hilum.v1.IngestionService"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("access-tls"))


def _serve(address: str, section: GrpcSection, ingestion: Ingestion) -> StartedServer:
    servicer = IngestionServicer(ingestion)
    return create_server(address, [SERVICE],
                         lambda server: ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(servicer, server),
                         max_message_bytes=1024 * 1024, section=section)


@pytest.fixture
def ingestion(sqlite_sessions: sessionmaker[Session], store: ObjectStore) -> Ingestion:
    return Ingestion(sqlite_sessions, store, "urn:oid:1.2.3")


@pytest.fixture
def with_token(ingestion: Ingestion) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    server = _serve(address, GrpcSection(bearer_token=TOKEN), ingestion)
    yield address
    server.stop(None)


def _status(address: str, section: GrpcSection | None) -> ingestion_pb2.StudyStatus:
    with client_channel(address, section, []) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        response: ingestion_pb2.StudyStatus = stub.GetStudyStatus(
            ingestion_pb2.GetStudyStatusRequest(study_instance_uid="1.2.3"), timeout=5)
        return response


def test_a_call_without_the_token_is_unauthenticated(with_token: str) -> None:
    for section in (None, GrpcSection(bearer_token="not-the-token-but-long-enough")):
        with pytest.raises(grpc.RpcError) as refused:
            _status(with_token, section)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert TOKEN not in str(refused.value.details())


def test_a_client_with_the_token_is_served_and_health_needs_none(with_token: str) -> None:
    assert _status(with_token, GrpcSection(bearer_token=TOKEN)).study_instance_uid == "1.2.3"
    with IngestionClient(with_token, section=GrpcSection(bearer_token=TOKEN)) as client:
        assert client.status("1.2.3").study_instance_uid == "1.2.3"
    assert is_serving(with_token, SERVICE)  # probes carry no token


def test_beyond_loopback_only_with_tls_and_a_token_or_client_certificates(tls: TlsFiles) -> None:
    anywhere = "0.0.0.0:50051"
    refused = [GrpcSection(), GrpcSection(bearer_token=TOKEN), tls.server()]
    for section in refused:
        with pytest.raises(ExposureRefused, match="beyond loopback"):
            check_exposure(anywhere, section)
    for section in (tls.server().model_copy(update={"bearer_token": TOKEN}), tls.server(require_client_cert=True)):
        check_exposure(anywhere, section)
    check_exposure("127.0.0.1:50051", GrpcSection())
    check_exposure("[::1]:50051", GrpcSection())
    with pytest.raises(ExposureRefused, match="at least 16 characters"):
        check_exposure("127.0.0.1:50051", GrpcSection(bearer_token="short"))


def test_a_server_beyond_loopback_over_tls_with_a_token(ingestion: Ingestion, tls: TlsFiles) -> None:
    port = free_port()
    with pytest.raises(ExposureRefused):
        _serve(f"0.0.0.0:{port}", GrpcSection(), ingestion)
    server = _serve(f"0.0.0.0:{port}", tls.server().model_copy(update={"bearer_token": TOKEN}), ingestion)
    try:
        client = tls.client().model_copy(update={"bearer_token": TOKEN})
        assert _status(f"localhost:{port}", client).study_instance_uid == "1.2.3"
        with pytest.raises(grpc.RpcError) as refused:
            _status(f"localhost:{port}", tls.client())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(None)
