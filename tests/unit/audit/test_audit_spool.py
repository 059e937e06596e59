"""The HTTP doors' audit spool on a real Redis: pushed before the call is answered, drained into the database in the
order recorded, never lost to a failed drain, never stored twice."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.spool import DRAIN_LOCK, SPOOL_KEY, AuditSpool, drain_spool
from hilum.audit.trail import AuditTrail
from hilum.common.fhir.audit_event import SEARCH, AuditAgent, AuditKind, AuditPatient, AuditRecord
from tests.helpers import audit_events, audited_patient_ids


@pytest.fixture
def spool(redis_client: redis.Redis) -> AuditSpool:
    redis_client.delete(SPOOL_KEY, DRAIN_LOCK)
    return AuditSpool(redis_client, AuditTrail("fhir-api"))


def _record(n: int) -> AuditRecord:
    return AuditRecord(kind=AuditKind.REST, subtypes=(SEARCH,), action="E",
                       requestor=AuditAgent(user_id="mirth-engine", requestor=True),
                       patients=(AuditPatient(system="urn:oid:1.2.3", value=f"MRN-{n}"),), query=f"q={n}")


def test_the_spool_is_drained_in_the_order_recorded(spool: AuditSpool, redis_client: redis.Redis,
                                                    sqlite_sessions: sessionmaker[Session]) -> None:
    ids = [spool.record(_record(n)) for n in range(5)]
    assert redis_client.llen(SPOOL_KEY) == 5 and audit_events(sqlite_sessions) == []
    assert drain_spool(redis_client, sqlite_sessions, AuditTrail("audit"), batch=3) == 3
    assert drain_spool(redis_client, sqlite_sessions, AuditTrail("audit"), batch=3) == 2
    assert drain_spool(redis_client, sqlite_sessions, AuditTrail("audit")) == 0
    stored = audit_events(sqlite_sessions)
    assert [event["id"] for event in stored] == ids
    assert [audited_patient_ids(event) for event in stored] == [[f"MRN-{n}"] for n in range(5)]
    assert stored[0]["source"]["observer"]["display"] == "Hilum fhir-api"  # the door's, not the drain's


def test_a_drain_that_died_before_taking_its_events_off_stores_nothing_twice(
        spool: AuditSpool, redis_client: redis.Redis, sqlite_sessions: sessionmaker[Session]) -> None:
    for n in range(3):
        spool.record(_record(n))
    raw = redis_client.lrange(SPOOL_KEY, 0, -1)
    drain_spool(redis_client, sqlite_sessions, AuditTrail("audit"))
    redis_client.rpush(SPOOL_KEY, *raw[::-1])  # as if the LTRIM after the commit never ran
    redis_client.lpush(SPOOL_KEY, json.dumps(AuditTrail("cds").event(_record(9))))
    assert drain_spool(redis_client, sqlite_sessions, AuditTrail("audit")) == 4
    assert len(audit_events(sqlite_sessions)) == 4 and redis_client.llen(SPOOL_KEY) == 0

