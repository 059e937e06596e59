"""The audit thread of the assembler process: the HTTP doors' spool moved into the database, then the outbox sent to
the syslog repository, round after round."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.export import AuditExporter
from hilum.audit.spool import drain_spool
from hilum.audit.trail import AuditTrail
from hilum.common.metrics import AUDIT_ROUND_FAILURES

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


def audit_round(redis_client: redis.Redis, sessions: sessionmaker[Session], trail: AuditTrail,
                exporter: AuditExporter | None) -> int:
    """One round: up to a batch of the spool into the database, then up to a batch of the outbox to the repository
    (where one is configured); returns how many events were moved or sent (0: nothing waits)."""
    moved = drain_spool(redis_client, sessions, trail)
    return moved + (exporter.export_round() if exporter is not None else 0)


def run_audit_rounds(one_round: Callable[[], int], stop: threading.Event, poll_s: float = 0.5) -> None:
    """Rounds until stop is set: back to back while events wait, every poll_s when none do, and after a failure
    (Redis, the database or the repository is down) with a backoff doubling up to a minute; what waits stays where
    it is until a round succeeds."""
    backoff_s = poll_s
    while not stop.is_set():
        try:
            if one_round():
                backoff_s = poll_s
                continue
        except Exception as exc:
            AUDIT_ROUND_FAILURES.inc()
            log.warning("audit round failed; will try again", extra={"error_type": type(exc).__name__,
                                                                      "retry_after_s": backoff_s})
            stop.wait(backoff_s)
            backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)
            continue
        backoff_s = poll_s
        stop.wait(poll_s)
