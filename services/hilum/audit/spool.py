"""The audit spool of the HTTP doors (the CDS service, the FHIR API): each call's AuditEvent is pushed onto a Redis
list before the call is answered, and the assembler's audit thread moves the spool into the database.

Why a spool: a database transaction per call would cost a CDS call more than its own work; one Redis push (Redis
runs with AOF written through on every write) is durable at a fraction of that, and the calls already depend on
Redis. A call whose push fails is refused (the doors answer 503), so nothing is served unaudited. The spool's
values hold patient identifiers, as the CDS view cache's do; its key holds none.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.trail import AuditTrail
from hilum.common.fhir.audit_event import AuditRecord
from hilum.fhir_api.tables import FhirResourceRow

SPOOL_KEY = "hilum:audit:spool"
DRAIN_LOCK = "hilum:audit:spool:lock"
DRAIN_BATCH = 500


class AuditSpool:
    """Records a door's AuditEvents by pushing them onto the spool (newest first)."""

    def __init__(self, redis_client: redis.Redis, trail: AuditTrail) -> None:
        self._redis = redis_client
        self.trail = trail

    def record(self, record: AuditRecord) -> str:
        """Push the record's AuditEvent; returns its id. Raises redis.RedisError when Redis cannot take it."""
        event = self.trail.event(record)
        self._redis.lpush(SPOOL_KEY, json.dumps(event, separators=(",", ":"), ensure_ascii=False))
        self.trail.count(record)
        return str(event["id"])


def drain_spool(redis_client: redis.Redis, sessions: sessionmaker[Session], trail: AuditTrail,
                batch: int = DRAIN_BATCH) -> int:
    """Move up to `batch` of the oldest spooled events into the database (and the export's outbox, where `trail`
    exports); returns how many were taken off the spool. An event is taken off only once committed, and one already
    stored (a drain that died between its commit and taking the events off) is not stored again; a lock keeps two
    drains from taking the same events."""
    lock = redis_client.lock(DRAIN_LOCK, timeout=60)
    if not lock.acquire(blocking=False):
        return 0
    try:
        oldest = redis_client.lrange(SPOOL_KEY, -batch, -1)
        if not oldest:
            return 0
        events = [json.loads(raw) for raw in reversed(oldest)]  # in the order they were recorded
        with sessions.begin() as session:
            _store_new(session, trail, events)
        redis_client.ltrim(SPOOL_KEY, 0, -len(oldest) - 1)
    finally:
        lock.release()
    return len(oldest)


def _store_new(session: Session, trail: AuditTrail, events: list[dict[str, object]]) -> None:
    ids = [str(event["id"]) for event in events]
    stored = set(session.scalars(select(FhirResourceRow.resource_id).where(
        FhirResourceRow.resource_type == "AuditEvent", FhirResourceRow.resource_id.in_(ids))))
    trail.store_events(session, [event for event in events if event["id"] not in stored], datetime.now(UTC))
