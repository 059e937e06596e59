"""IngestionClient against a real ingestion gRPC server: submit in order, status, waiting, rejection lines, TLS."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pydicom
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import studies
from hilum.common.grpc_server import StartedServer, create_server, is_serving
from hilum.common.object_store import ObjectStore
from hilum.common.queue import create_celery_app
from hilum.common.settings import GrpcSection, HilumSettings, RedisSection
from hilum.ingestion.client import IngestionClient, rejection_line
from hilum.ingestion.service import Ingestion
from hilum.ingestion.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2
from tests.unit.common.tls_certs import write_tls_files

MRN_SYSTEM = "urn:oid:1.2.3.4.5"


def _ingestion_server(sessions: sessionmaker[Session], tmp_path: Path, redis_url: str,
                      section: GrpcSection | None = None) -> tuple[str, StartedServer]:
    """A real ingestion server on a free port (its Celery app on redis_url), with section's TLS if given."""
    ingestion = Ingestion(sessions, ObjectStore(tmp_path / "objects"), MRN_SYSTEM)
    forward = WIRING.forwarder(create_celery_app(HilumSettings(redis=RedisSection(url=redis_url))))
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [WIRING.grpc_service], lambda srv: WIRING.add_servicer(ingestion, forward, srv),
                           max_message_bytes=16 * 1024 * 1024, section=section)
    return address, server


@pytest.fixture
def client(sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_server: RedisServer,
           redis_client: redis_lib.Redis) -> Iterator[IngestionClient]:
    """A client on a real ingestion server (its Celery app on the flushed private Redis)."""
    address, server = _ingestion_server(sqlite_sessions, tmp_path, redis_server.url)
    with IngestionClient(address) as client:
        yield client
    server.stop(None)


def _sample(index: int, out_dir: Path) -> Path:
    return write_study(dataclasses.replace(SAMPLE_STUDIES[index], rows=160, columns=128), out_dir)


def _submitted(client: IngestionClient, tmp_path: Path) -> str:
    [result] = client.submit_files([_sample(0, tmp_path / "in")])
    assert result.accepted
    return result.study_instance_uid


def test_submit_files_answers_in_order_labelled_by_file_name(
    client: IngestionClient, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    first, second = _sample(0, tmp_path / "a"), _sample(1, tmp_path / "b")
    not_dicom = write_rejectable_inputs(tmp_path / "bad")["not_dicom"]
    results = client.submit_files([second, not_dicom, first])
    assert [r.label for r in results] == [second.name, not_dicom.name, first.name]
    assert [r.accepted for r in results] == [True, False, True]
    assert results[0].study_instance_uid == pydicom.dcmread(second).StudyInstanceUID
    assert results[2].study_instance_uid == pydicom.dcmread(first).StudyInstanceUID
    assert redis_client.llen("inference") == 0  # the assembler, not the door, hands studies on


def test_status_reports_a_submitted_study(client: IngestionClient, tmp_path: Path) -> None:
    uid = _submitted(client, tmp_path)
    status = client.status(uid)
    assert status.study_instance_uid == uid
    assert status.state == study_state.RECEIVED and status.instance_count == 1


def test_wait_for_a_study_that_never_finishes_times_out(client: IngestionClient, tmp_path: Path) -> None:
    uid = _submitted(client, tmp_path)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="1 studies not finished"):
        client.wait_for([uid], timeout_s=0.3, poll_s=0.05)
    assert time.monotonic() - started < 3.0


def test_wait_for_returns_at_once_for_a_reported_study(
    client: IngestionClient, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    uid = _submitted(client, tmp_path)
    with sqlite_sessions.begin() as session:
        for reached in (study_state.INFERRED, study_state.COMPARED, study_state.REPORTED):
            studies.advance(session, uid, reached)
    started = time.monotonic()
    done = client.wait_for([uid, uid], timeout_s=0.0, poll_s=5.0)
    assert time.monotonic() - started < 1.0
    assert list(done) == [uid] and done[uid].state == study_state.REPORTED


def test_wait_for_returns_a_failed_study_with_its_error(
    client: IngestionClient, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    uid = _submitted(client, tmp_path)
    with sqlite_sessions.begin() as session:
        studies.fail(session, uid, "inference: image unreadable")
    done = client.wait_for([uid], timeout_s=0.0, poll_s=5.0)
    assert done[uid].state == study_state.FAILED and done[uid].error == "inference: image unreadable"


def test_wait_for_stops_when_the_check_raises(client: IngestionClient, tmp_path: Path) -> None:
    uid = _submitted(client, tmp_path)

    def stage_died() -> None:
        raise RuntimeError("inference worker exited")

    with pytest.raises(RuntimeError, match="inference worker exited"):
        client.wait_for([uid], timeout_s=30.0, poll_s=0.05, check=stage_died)


def test_rejection_line_names_the_file_reason_and_short_code() -> None:
    result = ingestion_pb2.InstanceResult(
        label="ct-image.dcm",
        rejection=ingestion_pb2.Rejection(code=ingestion_pb2.RejectionCode.REJECTION_CODE_UNSUPPORTED_MODALITY,
                                          reason="modality CT is not a radiograph"),
    )
    assert rejection_line(result) == "REJECTED  ct-image.dcm: modality CT is not a radiograph [UNSUPPORTED_MODALITY]"


def test_rejection_line_of_a_real_rejection(client: IngestionClient, tmp_path: Path) -> None:
    ct_image = write_rejectable_inputs(tmp_path / "bad")["ct_image"]
    [result] = client.submit_files([ct_image])
    line = rejection_line(result)
    assert line.startswith(f"REJECTED  {ct_image.name}: {result.rejection.reason} [")
    assert line.endswith("]") and "REJECTION_CODE_" not in line


def test_a_client_with_tls_settings_submits_to_a_mutual_tls_server(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_server: RedisServer
) -> None:
    tls = write_tls_files(tmp_path / "tls")
    address, server = _ingestion_server(sqlite_sessions, tmp_path, redis_server.url,
                                        tls.server(require_client_cert=True))
    try:
        assert is_serving(address, WIRING.grpc_service, section=tls.client(with_cert=True))
        with IngestionClient(address, 16 * 1024 * 1024, section=tls.client(with_cert=True)) as client:
            [result] = client.submit_files([_sample(0, tmp_path / "in")])
            assert result.accepted
            assert client.status(result.study_instance_uid).state == study_state.RECEIVED
        with IngestionClient(address) as plaintext, pytest.raises(grpc.RpcError) as refused:
            plaintext.status(result.study_instance_uid, timeout_s=2)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)
