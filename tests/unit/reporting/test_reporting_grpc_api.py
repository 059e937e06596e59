"""Reporting's gRPC door on a real loopback server: Draft stores nothing, Publish publishes once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.cds_view import KEY_PREFIX, read_latest
from hilum.common.db import results, studies
from hilum.common.destinations import Destination
from hilum.common.grpc_server import create_server
from hilum.common.queue import Stage, create_celery_app
from hilum.common.settings import FhirSection, HilumSettings, RedisSection
from hilum.common.study import PatientInfo
from hilum.reporting.service import Reporting
from hilum.reporting.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2, reporting_pb2_grpc
from tests.helpers import demo_comparison, record_study

PATIENT = PatientInfo(patient_id="RG7", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
PUBLISHED = messages_pb2.PublishStatus.PUBLISH_STATUS_PUBLISHED
ALREADY_PUBLISHED = messages_pb2.PublishStatus.PUBLISH_STATUS_ALREADY_PUBLISHED


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def destinations() -> tuple[Destination, ...]:
    return ()


@pytest.fixture
def stub(sqlite_sessions: sessionmaker[Session], out_dir: Path, redis_server: RedisServer,
         redis_client: redis_lib.Redis,
         destinations: tuple[Destination, ...]) -> Iterator[reporting_pb2_grpc.ReportingServiceStub]:
    reporting = Reporting(sqlite_sessions, out_dir, redis_client,
                          FhirSection(patient_identifier_system="urn:oid:1.2.3"), destinations,
                          clock=lambda: datetime(2025, 2, 18, 12, 0, tzinfo=UTC))
    forward = WIRING.forwarder(create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url))))
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [WIRING.grpc_service], lambda srv: WIRING.add_servicer(reporting, forward, srv),
                           max_message_bytes=4 * 1024 * 1024)
    with grpc.insecure_channel(address) as channel:
        yield reporting_pb2_grpc.ReportingServiceStub(channel)
    server.stop(None)


def _stored_study(sessions: sessionmaker[Session], uid: str) -> None:
    record_study(sessions, uid, PATIENT, datetime(2025, 2, 18, 10, 5), view_positions=("PA",))


def _no_queue_holds_work(client: redis_lib.Redis) -> bool:
    return all(client.llen(stage.value) == 0 for stage in Stage)


def test_draft_returns_the_draft_and_writes_nothing(
    stub: reporting_pb2_grpc.ReportingServiceStub, sqlite_sessions: sessionmaker[Session], out_dir: Path,
    redis_client: redis_lib.Redis,
) -> None:
    _stored_study(sqlite_sessions, "41.1")
    draft = stub.Draft(demo_comparison("41.1"), timeout=10)
    assert "Pneumothorax" in draft.text
    assert len(draft.findings) > 0
    assert not out_dir.exists()
    assert read_latest(redis_client, "urn:oid:1.2.3", "RG7") is None and redis_client.dbsize() == 0
    with sqlite_sessions() as session:
        assert results.count_reports(session, "41.1") == 0
        row = studies.get_study(session, "41.1")
        assert row is not None and row.state == "RECEIVED"


def test_publish_twice_publishes_once(
    stub: reporting_pb2_grpc.ReportingServiceStub, sqlite_sessions: sessionmaker[Session],
    redis_client: redis_lib.Redis,
) -> None:
    _stored_study(sqlite_sessions, "41.2")
    first = stub.Publish(demo_comparison("41.2"), timeout=30)
    assert first.status == PUBLISHED and first.study_instance_uid == "41.2"
    assert first.diagnostic_report_id
    bundle = json.loads(Path(first.bundle_path).read_text())
    assert bundle["resourceType"] == "Bundle"

    second = stub.Publish(demo_comparison("41.2"), timeout=30)
    assert second.status == ALREADY_PUBLISHED
    assert second.diagnostic_report_id == first.diagnostic_report_id and second.bundle_path == first.bundle_path
    with sqlite_sessions() as session:
        assert results.count_reports(session, "41.2") == 1
        row = studies.get_study(session, "41.2")
        assert row is not None and row.state == "REPORTED"
    # The last stage hands nothing on: Redis holds only the CDS view.
    assert _no_queue_holds_work(redis_client)
    assert redis_client.dbsize() == len(list(redis_client.scan_iter(match=KEY_PREFIX + "*")))
    assert read_latest(redis_client, "urn:oid:1.2.3", "RG7") is not None


def test_publish_of_an_unknown_study_is_failed_precondition(
    stub: reporting_pb2_grpc.ReportingServiceStub, out_dir: Path, redis_client: redis_lib.Redis
) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.Publish(demo_comparison("41.404"), timeout=10)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not found" in (failed.value.details() or "")
    assert not out_dir.exists() and redis_client.dbsize() == 0


@pytest.mark.parametrize("destinations", [(Destination.FHIR_SERVER, Destination.MLLP)])
def test_publish_hands_each_planned_delivery_to_the_publishing_queue_once_per_call(
    stub: reporting_pb2_grpc.ReportingServiceStub, sqlite_sessions: sessionmaker[Session],
    redis_client: redis_lib.Redis,
) -> None:
    _stored_study(sqlite_sessions, "41.3")
    first = stub.Publish(demo_comparison("41.3"), timeout=30)
    assert [d.destination for d in first.deliveries] == ["fhir_server", "mllp"]
    assert redis_client.llen(Stage.PUBLISHING.value) == 2
