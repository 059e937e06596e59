"""Process entry points pick a stage's wiring by name and register its one queue task; the long-running ones
serve metrics and beat their heartbeat file."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis as redis_lib

from hilum.common.connections import open_sessions
from hilum.common.db import studies
from hilum.common.db.session import upgrade_database
from hilum.common.grpc_server import is_serving
from hilum.common.polling import wait_until
from hilum.common.settings import (
    DatabaseSection,
    DicomSection,
    GrpcSection,
    HealthSection,
    HilumSettings,
    IngestionSection,
    MetricsSection,
    QueueSection,
    RedisSection,
    StorageSection,
    TritonSection,
    settings_env,
)
from hilum.common.study import PatientInfo
from hilum.ingestion import dimse_scp
from hilum.reporting import wiring as reporting_wiring
from hilum.runtime.entrypoints import COMPANIONS, STAGE_NAMES, serve, stage_doors, worker_app, worker_pools
from hilum.runtime.ports import free_port
from hilum.runtime.processes import ManagedProcess
from hilum.runtime.redis_server import RedisServer
from tests.helpers import record_study

GRPC_SERVICES = {
    "ingestion": "hilum.v1.IngestionService",
    "inference": "hilum.v1.InferenceService",
    "priors": "hilum.v1.PriorsService",
    "reporting": "hilum.v1.ReportingService",
    "publishing": "hilum.v1.PublishingService",
}


def test_the_stages_are_named_in_pipeline_order() -> None:
    assert STAGE_NAMES == ("ingestion", "inference", "priors", "reporting", "publishing")


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_each_stage_name_picks_its_own_wiring(name: str) -> None:
    doors = stage_doors(name)
    assert doors.stage.value == name
    assert doors.stage.task_name == f"hilum.{name}.run"
    assert getattr(doors, "grpc_service", None) == GRPC_SERVICES[name]


def test_each_stage_hands_on_to_the_next_and_publishing_is_last() -> None:
    """Ingestion hands nothing on itself: the assembler hands complete studies to inference."""
    following = [getattr(stage_doors(name), "next_stage", None) for name in STAGE_NAMES]
    assert [s.value if s is not None else None for s in following] == [None, "priors", "reporting", "publishing", None]


@pytest.mark.parametrize(("name", "expected"), [
    ("ingestion", ("threads", 3)), ("inference", ("threads", 8)), ("priors", ("threads", 3)),
    ("reporting", ("threads", 3)), ("publishing", ("threads", 3)),
])
def test_every_stage_worker_runs_threads(name: str, expected: tuple[str, int]) -> None:
    """Inference waits on Triton (its threads reach the batcher together), priors on the database, publishing on
    the destinations, ingestion's queue door on files and in numpy; reporting works in Python, a few tens of
    milliseconds a study, which one process's threads keep up with for less memory than a process each."""
    settings = HilumSettings(queue=QueueSection(worker_concurrency=3, inference_concurrency=8))
    assert stage_doors(name).worker_pool(settings) == expected


def test_an_unknown_stage_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no stage called 'cds'") as refused:
        stage_doors("cds")
    assert all(name in str(refused.value) for name in STAGE_NAMES)


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_the_worker_app_registers_the_stage_task(name: str, tmp_path: Path) -> None:
    settings = HilumSettings(redis=RedisSection(url="redis://127.0.0.1:1/0"),
                             storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
                             queue=QueueSection(max_retries=7))
    app = worker_app([name], settings)
    assert app.main == f"hilum-{name}"
    assert app.conf.broker_url == "redis://127.0.0.1:1/0"
    task = app.tasks[f"hilum.{name}.run"]
    assert task.max_retries == 7
    assert app.conf.task_routes[f"hilum.{name}.run"] == {"queue": name}


def test_a_worker_app_holds_only_its_own_stage_task(tmp_path: Path) -> None:
    settings = HilumSettings(storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"))
    first, second = worker_app(["ingestion"], settings), worker_app(["priors"], settings)
    stage_tasks = {name for name in second.tasks if name.startswith("hilum.")}
    assert stage_tasks == {"hilum.priors.run"}
    assert "hilum.priors.run" not in first.tasks
    both = worker_app(["priors", "publishing"], settings)
    assert {name for name in both.tasks if name.startswith("hilum.")} == {"hilum.priors.run", "hilum.publishing.run"}


def test_stages_share_a_worker_only_when_each_runs_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage runs threads today; a stage wired for prefork processes could share no worker beyond one task."""
    storage = StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out")
    one, two = (HilumSettings(storage=storage, queue=QueueSection(worker_concurrency=n)) for n in (1, 2))
    assert worker_pools(["priors", "publishing"], two) == [("threads", 2), ("threads", 2)]
    assert worker_pools(["ingestion", "priors"], two) == [("threads", 2), ("threads", 2)]
    assert worker_pools(["reporting", "priors"], two) == [("threads", 2), ("threads", 2)]
    monkeypatch.setattr(reporting_wiring, "WIRING", dataclasses.replace(reporting_wiring.WIRING, pool="prefork"))
    assert worker_pools(["reporting", "priors"], one) == [("threads", 1), ("threads", 1)]  # one task: a thread
    with pytest.raises(ValueError, match="several stages share a worker only when each runs a threads pool"):
        worker_pools(["reporting", "priors"], two)  # two tasks of a prefork stage run in processes
    with pytest.raises(ValueError, match="each named once"):
        worker_pools(["priors", "priors"], one)


def test_the_worker_app_beats_only_when_a_heartbeat_file_is_set(tmp_path: Path) -> None:
    storage = StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out")
    quiet = worker_app(["priors"], HilumSettings(storage=storage))
    beating = worker_app(["priors"], HilumSettings(storage=storage,
                                                   health=HealthSection(heartbeat_file=tmp_path / "hb")))
    assert len(beating.steps["worker"]) == len(quiet.steps["worker"]) + 1


def _scrape(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def _beats_twice(path: Path) -> Callable[[], bool]:
    """A condition that holds once path's mtime has changed twice since it was first seen."""
    seen: set[int] = set()

    def beat_seen() -> bool:
        if path.exists():
            seen.add(path.stat().st_mtime_ns)
        return len(seen) >= 2

    return beat_seen


def _run(argv: list[str], settings: HilumSettings, log: Path, extra_env: dict[str, str]) -> ManagedProcess:
    env = {**os.environ, **settings_env(settings), **extra_env}
    process = ManagedProcess(argv[-1], [sys.executable, "-m", "hilum.cli", *argv], log, env=env)
    process.start()
    return process


def test_the_assembler_serves_metrics_and_beats_while_the_database_is_down(tmp_path: Path) -> None:
    port, heartbeat = free_port(), tmp_path / "run" / "heartbeat"
    settings = HilumSettings(
        database=DatabaseSection(url=f"postgresql+psycopg://hilum:secret@127.0.0.1:{free_port()}/hilum"),
        redis=RedisSection(url=f"redis://127.0.0.1:{free_port()}/0"),
        storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
        ingestion=IngestionSection(assembly_poll_s=0.1), metrics=MetricsSection(port=port),
        health=HealthSection(heartbeat_file=heartbeat),
    )
    process = _run(["serve", "assembler"], settings, tmp_path / "assembler.log", {})
    try:
        wait_until(lambda: _scrape(f"http://127.0.0.1:{port}/metrics") is not None, timeout_s=30, interval_s=0.1,
                   what="the assembler's metrics")
        wait_until(_beats_twice(heartbeat), timeout_s=10, interval_s=0.05, what="two heartbeats")
        assert process.running, process.log_tail()
    finally:
        process.stop()
    assert "assembler will try again" in process.log_tail(200)  # the database really was down


@pytest.mark.parametrize(("names", "pool", "concurrency"), [
    (["reporting"], "thread", 2), (["inference"], "thread", 3), (["ingestion", "priors", "publishing"], "thread", 6)])
def test_a_worker_serves_its_queue_length_and_beats(names: list[str], pool: str, concurrency: int,
                                                    redis_server: RedisServer, tmp_path: Path) -> None:
    """Multiprocess mode, as in Kubernetes (the chart gives every worker a folder): a worker's threads count in its
    one process, which beats and serves them; reporting takes worker_concurrency threads, inference its own
    concurrency. Two stages share a worker: its threads add up, and it serves both queues' lengths."""
    port, heartbeat, multiproc = free_port(), tmp_path / "heartbeat", tmp_path / "prometheus"
    multiproc.mkdir()
    settings = HilumSettings(
        redis=RedisSection(url=redis_server.url),
        storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
        queue=QueueSection(worker_concurrency=2, inference_concurrency=3),
        metrics=MetricsSection(port=port), health=HealthSection(heartbeat_file=heartbeat, heartbeat_interval_s=0.2),
    )
    process = _run(["worker", *names], settings, tmp_path / "worker.log",
                   {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)})
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: _scrape(url) is not None, timeout_s=30, interval_s=0.1, what="the worker's metrics")
        wait_until(_beats_twice(heartbeat), timeout_s=30, interval_s=0.05, what="two heartbeats")
        text = _scrape(url)
        assert process.running, process.log_tail()
    finally:
        process.stop()
    assert text is not None
    assert all(f'hilum_queue_messages{{queue="{name}"}} 0.0' in text for name in names)
    assert f"concurrency: {concurrency} ({pool})" in process.log_tail(200)  # Celery's start-up banner
    assert "startup objects frozen" in process.log_tail(200)  # once ready: out of the collector's full collections


def test_one_process_serves_every_stage_on_its_own_port_with_the_scp_and_the_assembler_and_stops_them_all(
    redis_server: RedisServer, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    """The embedded stack's `grpc` process: `hilum serve` with the five stage names answers health for each stage's
    service on that stage's port, runs the DICOM SCP and the assembler in threads, and SIGTERM stops all of it
    (every server drained). Without Triton, only the inference service is NOT_SERVING (the reason logged); the
    overall service of its port still serves."""
    ports = {name: free_port() for name in STAGE_NAMES}
    triton_url = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings = HilumSettings(
        database=DatabaseSection(url=f"sqlite:///{tmp_path / 'hilum.db'}"),
        redis=RedisSection(url=redis_server.url),
        storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
        grpc=GrpcSection(**{f"{name}_port": port for name, port in ports.items()}),
        triton=TritonSection(grpc_url=triton_url),
        dicom=DicomSection(port=free_port()),
        ingestion=IngestionSection(assembly_poll_s=0.1),
    )
    upgrade_database(settings.database_url)
    sessions = open_sessions(settings)
    record_study(sessions, "4.4", PatientInfo(patient_id="P4", issuer="", name="", birth_date=None, sex=""), None,
                 view_positions=("PA",))
    with sessions.begin() as session:
        studies.mark_due(session, "4.4", datetime.now(UTC))
    process = _run(["serve", *STAGE_NAMES, *COMPANIONS], settings, tmp_path / "grpc.log", {})
    try:
        for name, port in ports.items():
            service = "" if name == "inference" else GRPC_SERVICES[name]
            wait_until(lambda port=port, service=service: is_serving(f"127.0.0.1:{port}", service),
                       timeout_s=60, interval_s=0.1, what=f"the {name} gRPC service")
        absent = f"InferenceService not serving: Triton at {triton_url} does not answer (StatusCode.UNAVAILABLE)"
        wait_until(lambda: absent in process.log_tail(), timeout_s=30, interval_s=0.1,
                   what="the inference service to find Triton absent")
        assert not is_serving(f"127.0.0.1:{ports['inference']}", GRPC_SERVICES["inference"])
        assert not is_serving(f"127.0.0.1:{ports['priors']}", GRPC_SERVICES["inference"])  # each port its own stage
        wait_until(lambda: dimse_scp.answers(settings.dicom), timeout_s=30, interval_s=0.1, what="the DICOM SCP")
        wait_until(lambda: redis_client.llen("inference") == 1, timeout_s=30, interval_s=0.1,
                   what="the assembler to hand the due study to inference")
        assert "startup objects frozen" in process.log_tail(200)  # every server started: out of full collections
    finally:
        process.stop()
    assert process.exited() == 0, process.log_tail()  # SIGTERM: every server drained and the process ended itself
    assert not dimse_scp.answers(settings.dicom)


@pytest.mark.parametrize(("argv", "refusal"), [
    (["serve", "ingestion", "cds"], "several names are for stages (ingestion, inference, priors, reporting, "
                                    "publishing) and assembler and dicom only, not cds"),
    (["serve", "priors", "priors"], "a name given twice"),
    (["serve", "assembler", "dicom"], "assembler and dicom share a process with gRPC stages only"),
])
def test_serve_refuses_names_that_cannot_share_a_process(argv: list[str], refusal: str, tmp_path: Path) -> None:
    process = _run(argv, HilumSettings(storage=StorageSection(data_dir=tmp_path / "data")), tmp_path / "serve.log", {})
    try:
        wait_until(lambda: process.exited() is not None, timeout_s=30, interval_s=0.1, what="serve to refuse")
    finally:
        process.stop()
    assert process.exited() != 0
    assert refusal in process.log_tail()


def test_a_health_only_port_needs_one_stage_per_process(tmp_path: Path) -> None:
    settings = HilumSettings(storage=StorageSection(data_dir=tmp_path / "data"), grpc=GrpcSection(health_port=8086))
    with pytest.raises(ValueError, match="HILUM_GRPC__HEALTH_PORT is for one stage per process"):
        serve(["ingestion", "inference"], settings)
