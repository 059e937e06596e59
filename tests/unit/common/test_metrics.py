"""Hilum's metrics: queue lengths read from a real Redis at scrape time, endpoints scraped over real HTTP, and
multiprocess mode, where a count made in a child process reaches the parent's endpoint."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from celery.signals import worker_process_shutdown
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from hilum.common.metrics import (
    DEAD_LETTERS,
    DELIVERIES_DEAD,
    MARK_DEAD_UID,
    QueueLengthCollector,
    mark_dead_worker_processes,
    metrics_text,
    process_registry,
    queue_length_collector,
    serve_metrics,
)
from hilum.common.queue import Stage, create_celery_app, enqueue
from hilum.common.settings import HilumSettings, MetricsSection, RedisSection
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2


def _scrape_errors() -> float:
    return REGISTRY.get_sample_value("hilum_metrics_scrape_errors_total", {"source": "redis"}) or 0.0


def test_queue_lengths_are_those_of_the_celery_queues(redis_server: RedisServer,
                                                      redis_client: redis_lib.Redis) -> None:
    app = create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url)), name="metrics-test")
    for uid in ("1.1", "1.2", "1.3"):
        enqueue(app, Stage.INFERENCE, messages_pb2.StudyReference(study_instance_uid=uid))
    registry = CollectorRegistry()
    registry.register(QueueLengthCollector(redis_client, ["inference", "priors"]))
    assert registry.get_sample_value("hilum_queue_messages", {"queue": "inference"}) == 3
    assert registry.get_sample_value("hilum_queue_messages", {"queue": "priors"}) == 0
    redis_client.lpop("inference")  # a worker took one
    assert registry.get_sample_value("hilum_queue_messages", {"queue": "inference"}) == 2


def test_redis_down_leaves_the_sample_out_and_counts_a_scrape_error_without_failing_the_scrape() -> None:
    registry = CollectorRegistry()
    registry.register(queue_length_collector(f"redis://127.0.0.1:{free_port()}/0", ["publishing"]))
    before = _scrape_errors()
    started = time.monotonic()
    text = generate_latest(registry).decode()
    assert time.monotonic() - started < 1  # refused at once: no retries
    assert "# TYPE hilum_queue_messages gauge" in text
    assert 'hilum_queue_messages{queue="publishing"}' not in text
    assert _scrape_errors() == before + 1


def test_no_port_serves_nothing() -> None:
    assert serve_metrics(MetricsSection(port=0)) is None


def test_a_process_serves_its_counts_and_queue_lengths_over_http(redis_client: redis_lib.Redis) -> None:
    redis_client.rpush("reporting", b"a", b"b")
    collector = QueueLengthCollector(redis_client, ["reporting"])
    port = free_port()
    server = serve_metrics(MetricsSection(host="127.0.0.1", port=port), [collector])
    assert server is not None
    try:
        DELIVERIES_DEAD.labels(destination="mllp").inc()
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        REGISTRY.unregister(collector)
    assert response.status_code == 200
    assert 'hilum_queue_messages{queue="reporting"} 2.0' in response.text
    assert 'hilum_deliveries_dead_total{destination="mllp"}' in response.text
    # The process-wide registry: the CDS histogram is declared (its samples depend on what else ran in this process).
    assert "# TYPE hilum_http_request_duration_seconds histogram" in response.text


@pytest.fixture
def multiprocess_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Multiprocess mode for this test: PROMETHEUS_MULTIPROC_DIR set to an empty folder."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    yield folder
    worker_process_shutdown.disconnect(dispatch_uid=MARK_DEAD_UID)


def _count_dead_letters_in_a_child() -> None:
    """Runs in a fresh (spawned) interpreter, which picks multiprocess storage at import, like a pool process."""
    DEAD_LETTERS.labels(stage="inference").inc(3)


def test_in_multiprocess_mode_a_childs_count_reaches_the_parents_endpoint(multiprocess_dir: Path) -> None:
    port = free_port()
    server = serve_metrics(MetricsSection(host="127.0.0.1", port=port))
    assert server is not None
    try:
        child = multiprocessing.get_context("spawn").Process(target=_count_dead_letters_in_a_child)
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    assert 'hilum_dead_letters_total{stage="inference"} 3.0' in response.text
    assert list(multiprocess_dir.glob("counter_*.db"))  # the child's counts, kept after it exited
    body, content_type = metrics_text()  # what the CDS app's /metrics serves: the same, read from the files
    assert 'hilum_dead_letters_total{stage="inference"} 3.0' in body.decode()
    assert content_type.startswith("text/plain")


def test_the_registry_is_the_default_one_only_outside_multiprocess_mode(multiprocess_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert process_registry() is not REGISTRY
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert process_registry() is REGISTRY


def test_a_pool_process_that_exits_has_its_live_gauge_files_dropped(multiprocess_dir: Path) -> None:
    live, kept = multiprocess_dir / "gauge_livesum_4242.db", multiprocess_dir / "counter_4242.db"
    live.write_bytes(b""), kept.write_bytes(b"")
    mark_dead_worker_processes()
    mark_dead_worker_processes()  # connected once however often it is asked
    worker_process_shutdown.send(sender="test", pid=4242, exitcode=0)
    assert not live.exists() and kept.exists()
