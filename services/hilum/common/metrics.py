"""Hilum's Prometheus metrics, defined once, and how a process serves them.

Labels carry only a stage, queue, destination, model name, route template, HTTP method or status code: never a
patient, study or raw path (paths and queries carry patient ids).

Multiprocess mode: Celery's prefork pool runs tasks in child processes and the CDS app may run several uvicorn
workers, so a count made in one process must reach the one endpoint that is scraped. With
PROMETHEUS_MULTIPROC_DIR set (an empty folder, before the process starts: prometheus-client picks its storage
at import), every process writes its values to files there and an endpoint reads them all (MultiProcessCollector).
Counters and histograms add up across processes, dead ones included. hilum_queue_messages is no multiprocess
Gauge: it is computed at scrape time by the serving process, so no Gauge mode applies to it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from celery.signals import worker_process_shutdown
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry

from hilum.common.settings import MetricsSection

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MARK_DEAD_UID = "hilum.metrics.mark_dead"  # connected once per process, however often it is asked
# A CDS service targets tens of milliseconds; the EHR gives up around half a second to a few seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)

DEAD_LETTERS = Counter("hilum_dead_letters_total", "Queue messages dead-lettered (they will never succeed), per stage.",
                       ["stage"])
DELIVERIES_DEAD = Counter("hilum_deliveries_dead_total",
                          "Deliveries given up on (attempts spent or refused for good), per destination.",
                          ["destination"])
RESUMED = Counter("hilum_resumed_total",
                  "Studies and deliveries stalled with their queue message lost, handed on again by the assembler.",
                  ["what"])
SCRAPE_ERRORS = Counter("hilum_metrics_scrape_errors_total",
                        "Scrapes in which a source could not be read (its samples are left out), per source.",
                        ["source"])
HTTP_REQUEST_DURATION = Histogram("hilum_http_request_duration_seconds",
                                  "CDS Hooks and FHIR API request latency, per route template, method and status.",
                                  ["route", "method", "status"], buckets=LATENCY_BUCKETS_S)
AUDIT_EVENTS = Counter("hilum_audit_events_total", "AuditEvents recorded, per event type and outcome (0, 4, 8, 12).",
                       ["type", "outcome"])
AUDIT_EXPORTED = Counter("hilum_audit_exported_total", "AuditEvents sent to the syslog audit repository.")
AUDIT_ROUND_FAILURES = Counter("hilum_audit_round_failures_total",
                               "Rounds of the assembler's audit thread that failed: the spool could not be moved into "
                               "the database, or the outbox not sent to the syslog repository (the events wait).")
# Set by the inference gRPC server as it asks Triton; in multiprocess mode the latest value of a live process.
MODEL_READY = Gauge("hilum_model_ready", "Whether Triton has the model ready (1) or not (0), per model inference uses.",
                    ["model"], multiprocess_mode="livemostrecent")
QUEUE_MESSAGES = "hilum_queue_messages"
# How long a scrape waits on Redis for the queue lengths (once, no retries) before it leaves them out.
SCRAPE_REDIS_TIMEOUT_S = 2.0


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode (PROMETHEUS_MULTIPROC_DIR), or None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def process_registry() -> CollectorRegistry:
    """The registry a process serves: in multiprocess mode a new one reading every process's files, else the
    default registry of this process."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def metrics_text() -> tuple[bytes, str]:
    """This process's (or, in multiprocess mode, every process's) metrics as Prometheus text, and its content type."""
    return generate_latest(process_registry()), CONTENT_TYPE_LATEST


def serve_metrics(section: MetricsSection, collectors: Sequence[Collector] = ()) -> WSGIServer | None:
    """Serve GET /metrics on section.host:section.port from a daemon thread, with `collectors` added (computed at
    scrape time); nothing when section.port is 0. Returns the server, so that a caller may shut it down."""
    if section.port <= 0:
        return None
    registry = process_registry()
    for collector in collectors:
        registry.register(collector)
    server, _thread = start_http_server(section.port, addr=section.host, registry=registry)
    log.info("metrics served on port %d", section.port)
    return server


def mark_dead_worker_processes() -> None:
    """In multiprocess mode, drop each Celery pool process's live-gauge files as it exits (worker_process_shutdown);
    its counters and histograms stay counted."""
    path = multiprocess_dir()
    if path is None:
        return

    def mark_dead(pid: int, **_: Any) -> None:
        """Runs as the pool process exits."""
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]

    worker_process_shutdown.connect(mark_dead, weak=False, dispatch_uid=MARK_DEAD_UID)


class QueueLengthCollector(Collector):
    """hilum_queue_messages{queue}: how many messages wait in each named Celery queue, read from Redis at scrape
    time (Celery's Redis transport keeps a queue without priorities as a Redis list named after it).

    A queue Redis cannot be asked about has no sample and counts hilum_metrics_scrape_errors_total{source="redis"}:
    the scrape itself never fails.
    """

    def __init__(self, client: redis.Redis, queues: Sequence[str]) -> None:
        self._client = client
        self._queues = tuple(queues)

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(QUEUE_MESSAGES, "Messages waiting in a stage's Celery queue.", labels=["queue"])

    def describe(self) -> Iterable[Metric]:
        """The metric's name, without asking Redis (registration must not need it)."""
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        """One sample per queue Redis answered for."""
        family = self._family()
        for queue in self._queues:
            try:
                length = self._client.llen(queue)
            except redis.RedisError as error:
                SCRAPE_ERRORS.labels(source="redis").inc()
                log.warning("queue length unavailable (%s)", type(error).__name__, extra={"stage": queue})
                continue
            family.add_metric([queue], float(length))
        return [family]


def queue_length_collector(redis_url: str, queues: Sequence[str]) -> QueueLengthCollector:
    """A QueueLengthCollector with its own Redis client, which gives up after SCRAPE_REDIS_TIMEOUT_S and never
    retries: a scrape must end well within Prometheus's scrape timeout even when Redis is down."""
    client = redis.Redis.from_url(redis_url, socket_timeout=SCRAPE_REDIS_TIMEOUT_S,
                                  socket_connect_timeout=SCRAPE_REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
    return QueueLengthCollector(client, queues)
