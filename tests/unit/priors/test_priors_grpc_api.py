"""Priors' gRPC door on a real loopback server: Compare computes and stores, and enqueues nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import grpc
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import results, studies
from hilum.common.grpc_server import create_server
from hilum.common.queue import create_celery_app
from hilum.common.settings import HilumSettings, RedisSection
from hilum.common.study import PatientInfo
from hilum.priors.service import Priors
from hilum.priors.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2, priors_pb2_grpc
from tests.helpers import record_study

PATIENT = PatientInfo(patient_id="PG1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
MODEL = messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=True)
S = messages_pb2.FindingState


@pytest.fixture
def stub(sqlite_sessions: sessionmaker[Session], redis_server: RedisServer,
         redis_client: redis_lib.Redis) -> Iterator[priors_pb2_grpc.PriorsServiceStub]:
    """A stub on a server given the real forwarder to reporting, which the door must not use."""
    forward = WIRING.forwarder(create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url))))
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [WIRING.grpc_service],
                           lambda srv: WIRING.add_servicer(Priors(sqlite_sessions), forward, srv),
                           max_message_bytes=4 * 1024 * 1024)
    with grpc.insecure_channel(address) as channel:
        yield priors_pb2_grpc.PriorsServiceStub(channel)
    server.stop(None)


def _findings(uid: str, effusion: messages_pb2.FindingState.ValueType) -> messages_pb2.StudyFindings:
    return messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid), model=MODEL,
        findings=[messages_pb2.Finding(code="effusion", display="Pleural effusion", state=effusion)],
    )


def test_compare_returns_the_comparison_with_the_prior(
    stub: priors_pb2_grpc.PriorsServiceStub, sqlite_sessions: sessionmaker[Session],
    redis_client: redis_lib.Redis,
) -> None:
    now = datetime(2025, 2, 18, 10, 0)
    record_study(sqlite_sessions, "31.1", PATIENT, now - timedelta(days=30))
    record_study(sqlite_sessions, "31.2", PATIENT, now)
    with sqlite_sessions.begin() as session:
        results.save_findings(session, _findings("31.1", S.FINDING_STATE_ABSENT))

    current = _findings("31.2", S.FINDING_STATE_PRESENT)
    comparison = stub.Compare(current, timeout=10)
    assert comparison.current == current
    assert comparison.prior.study_instance_uid == "31.1"
    assert comparison.prior.study_date == "20250119"
    assert [(c.code, c.change) for c in comparison.changes] == [("effusion", messages_pb2.Change.CHANGE_NEW)]
    with sqlite_sessions() as session:
        row = studies.get_study(session, "31.2")
        assert row is not None and row.state == "COMPARED"
    assert redis_client.llen("reporting") == 0


def test_compare_of_an_unknown_study_is_failed_precondition(
    stub: priors_pb2_grpc.PriorsServiceStub, redis_client: redis_lib.Redis
) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.Compare(_findings("31.404", S.FINDING_STATE_ABSENT), timeout=10)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not found" in (failed.value.details() or "")
    assert redis_client.llen("reporting") == 0
