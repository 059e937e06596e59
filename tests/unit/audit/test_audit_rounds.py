"""The assembler's audit thread on a real Redis, database and loopback repository: rounds move the spool and send the
outbox; a round that fails leaves everything where it was, and the loop keeps trying until it succeeds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.export import AuditExporter
from hilum.audit.rounds import audit_round, run_audit_rounds
from hilum.audit.spool import DRAIN_LOCK, SPOOL_KEY, AuditSpool
from hilum.audit.syslog import SyslogError, SyslogSender
from hilum.audit.trail import AuditTrail
from hilum.common.db.models import AuditOutboxRow
from hilum.common.db.session import create_db_engine, session_factory
from hilum.common.fhir.audit_event import AuditAgent, AuditKind, AuditPatient, AuditRecord
from hilum.common.polling import wait_until
from tests.syslog_receiver import SyslogReceiver

EXPORTING = AuditTrail("audit", export=True)


def _record(n: int) -> AuditRecord:
    return AuditRecord(kind=AuditKind.EXPORT, requestor=AuditAgent(user_id="hilum-publishing", requestor=True),
                       patients=(AuditPatient(system="urn:oid:1.2.3", value=f"MRN-{n}"),),
                       recorded=datetime(2026, 12, 7, 9, 0, n, tzinfo=UTC))


def _queued(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditOutboxRow)) or 0


@pytest.fixture
def spool(redis_client: redis.Redis) -> AuditSpool:
    redis_client.delete(SPOOL_KEY, DRAIN_LOCK)
    return AuditSpool(redis_client, AuditTrail("cds"))


def test_a_round_drains_the_spool_then_sends_what_waits(spool: AuditSpool, redis_client: redis.Redis,
                                                        sqlite_sessions: sessionmaker[Session]) -> None:
    with sqlite_sessions.begin() as session:  # a stage's event, stored directly
        EXPORTING.record(session, _record(0))
    spool.record(_record(1))  # a door's
    with SyslogReceiver("tcp") as repository:
        exporter = AuditExporter(sqlite_sessions, SyslogSender(repository.url))
        assert audit_round(redis_client, sqlite_sessions, EXPORTING, exporter) == 1 + 2
        assert audit_round(redis_client, sqlite_sessions, EXPORTING, exporter) == 0
        wait_until(lambda: len(repository.received()) == 2, timeout_s=5, interval_s=0.05, what="both events")
    assert redis_client.llen(SPOOL_KEY) == 0 and _queued(sqlite_sessions) == 0


def test_a_round_that_cannot_write_leaves_the_spool_as_it_was(spool: AuditSpool, redis_client: redis.Redis,
                                                              tmp_path: Path) -> None:
    spool.record(_record(1))
    unmigrated = session_factory(create_db_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    with pytest.raises(Exception, match="no such table"):
        audit_round(redis_client, unmigrated, EXPORTING, None)
    assert redis_client.llen(SPOOL_KEY) == 1 and not redis_client.exists(DRAIN_LOCK)


def test_the_loop_keeps_trying_until_the_repository_is_back(sqlite_sessions: sessionmaker[Session]) -> None:
    with sqlite_sessions.begin() as session:
        EXPORTING.record_all(session, [_record(n) for n in range(3)])
    repository = SyslogReceiver("tcp")  # bound, not listening: connections are refused
    exporter = AuditExporter(sqlite_sessions, SyslogSender(repository.url, timeout_s=2))
    with pytest.raises(SyslogError):
        exporter.export_round()
    assert _queued(sqlite_sessions) == 3
    stop = threading.Event()
    thread = threading.Thread(target=run_audit_rounds, args=(exporter.export_round, stop, 0.05), daemon=True)
    thread.start()
    try:
        with repository:
            wait_until(lambda: len(repository.received()) == 3, timeout_s=10, interval_s=0.05, what="the backlog")
            with sqlite_sessions.begin() as session:  # one more while the loop runs
                EXPORTING.record(session, _record(3))
            wait_until(lambda: len(repository.received()) == 4, timeout_s=10, interval_s=0.05, what="the new one")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert _queued(sqlite_sessions) == 0 and not thread.is_alive()
