"""The heartbeat file: touched on demand, and by a real Celery worker's event loop on a real Redis."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from celery.contrib.testing.worker import start_worker

from hilum.common.heartbeat import beat, install_worker_heartbeat, stop_event
from hilum.common.polling import wait_until
from hilum.common.queue import create_celery_app
from hilum.common.settings import HealthSection, HilumSettings, RedisSection
from hilum.runtime.redis_server import RedisServer


def test_a_beat_creates_the_file_and_its_folder_then_renews_its_mtime(tmp_path: Path) -> None:
    path = tmp_path / "run" / "heartbeat"
    beat(path)
    assert path.is_file()
    os.utime(path, (1_000_000, 1_000_000))  # an old beat
    beat(path)
    assert time.time() - path.stat().st_mtime < 5


def test_no_heartbeat_file_adds_no_worker_step() -> None:
    app = create_celery_app(HilumSettings())
    steps_before = set(app.steps["worker"])
    install_worker_heartbeat(app, HealthSection(heartbeat_file=None))
    assert set(app.steps["worker"]) == steps_before


def test_a_real_worker_beats_once_ready_and_keeps_beating_until_it_stops(redis_server: RedisServer,
                                                                        tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    path.write_text("")
    os.utime(path, (1_000_000, 1_000_000))  # left by an earlier worker: not evidence of this one
    app = create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url)), name="heartbeat-test")
    install_worker_heartbeat(app, HealthSection(heartbeat_file=path, heartbeat_interval_s=0.2))

    with start_worker(app, pool="solo", perform_ping_check=False, queues=["heartbeat-test"], shutdown_timeout=10):
        wait_until(lambda: path.exists() and time.time() - path.stat().st_mtime < 5, timeout_s=10,
                   interval_s=0.05, what="the first beat")
        first = path.stat().st_mtime_ns
        wait_until(lambda: path.stat().st_mtime_ns > first, timeout_s=5, interval_s=0.05, what="a later beat")
    stopped = path.stat().st_mtime_ns
    time.sleep(0.6)  # three intervals: a stopped worker no longer beats
    assert path.stat().st_mtime_ns == stopped


def test_a_worker_whose_loop_is_stuck_stops_beating(redis_server: RedisServer, tmp_path: Path) -> None:
    """A solo-pool task runs on the worker's own loop: while it blocks, no beat may happen."""
    path = tmp_path / "heartbeat"
    app = create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url)), name="stuck-test")
    install_worker_heartbeat(app, HealthSection(heartbeat_file=path, heartbeat_interval_s=0.1))
    blocked: list[float] = []

    @app.task(name="stuck-test.block", shared=False)  # type: ignore[untyped-decorator]
    def block() -> None:
        blocked.append(path.stat().st_mtime)
        time.sleep(1.0)
        blocked.append(path.stat().st_mtime)

    with start_worker(app, pool="solo", perform_ping_check=False, queues=["stuck-test"], shutdown_timeout=10):
        wait_until(path.exists, timeout_s=10, interval_s=0.05, what="the first beat")
        block.apply_async(queue="stuck-test")
        wait_until(lambda: len(blocked) == 2, timeout_s=10, interval_s=0.05, what="the blocking task")
    assert blocked[0] == blocked[1]


def test_a_loops_stop_event_beats_while_it_waits_and_ends_when_set(tmp_path: Path) -> None:
    heartbeat = tmp_path / "beat" / "file"
    stop = stop_event(HealthSection(heartbeat_file=heartbeat, heartbeat_interval_s=0.05))
    assert stop.wait(0.01) is False and heartbeat.exists()  # a wait after each round beats at once
    before = heartbeat.stat().st_mtime_ns
    assert stop.wait(0.3) is False and heartbeat.stat().st_mtime_ns > before  # and again while waiting long
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert stop.wait(30) is True and time.monotonic() - started < 5


def test_without_a_heartbeat_file_a_loops_stop_event_is_a_plain_event() -> None:
    stop = stop_event(HealthSection())
    assert type(stop) is threading.Event
