"""The embedded stack's doors, its endpoints.json, and the checks that run before anything starts."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hilum.common.grpc_server import create_server
from hilum.common.metrics import MULTIPROC_ENV
from hilum.common.settings import HilumSettings, RedisSection, TritonSection, settings_env
from hilum.runtime.endpoints import Endpoints, endpoints_path, read_endpoints, write_endpoints
from hilum.runtime.ports import PortInUse, PortUnavailable, free_port, is_free, loopback_settings
from hilum.runtime.redis_server import RedisServer
from hilum.runtime.stack import (
    PROCESS_DEFAULTS,
    EmbeddedStack,
    StackAlreadyRunning,
    preflight,
    redis_port,
    stack_doors,
    stack_endpoints,
)
from hilum.runtime.triton import TritonNotInstalled
from tests.helpers import REPO_ROOT

STARTED = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> HilumSettings:
    """The settings a plain `hilum up` gets: no HILUM_* variables."""
    for name in list(os.environ):
        if name.startswith("HILUM_"):
            monkeypatch.delenv(name)
    return HilumSettings()


@pytest.fixture
def loopback(tmp_path: Path) -> HilumSettings:
    """Settings on free loopback ports, data under tmp_path; nothing listens on them."""
    return loopback_settings(tmp_path, tmp_path / "models", tmp_path / "absent-venv")


def test_endpoints_of_the_default_stack_are_the_documented_file(default_settings: HilumSettings,
                                                                tmp_path: Path) -> None:
    endpoints = stack_endpoints(stack_doors(default_settings), 12345, STARTED)
    write_endpoints(tmp_path, endpoints)

    assert json.loads(endpoints_path(tmp_path).read_text()) == {
        "pid": 12345, "started_at": "2026-12-01T09:00:00Z",
        "cds": "http://127.0.0.1:8080", "stow": "http://127.0.0.1:8080/dicomweb/studies",
        "fhir": "http://127.0.0.1:8080/fhir",
        "ingestion_grpc": "127.0.0.1:50051",
        "grpc": {"inference": "127.0.0.1:50052", "priors": "127.0.0.1:50053", "reporting": "127.0.0.1:50054",
                 "publishing": "127.0.0.1:50055"},
        "triton": {"grpc": "127.0.0.1:8101", "http": "http://127.0.0.1:8100", "metrics": "http://127.0.0.1:8102/metrics"},
        "redis": "redis://127.0.0.1:6390/0",
        "dicom": {"ae_title": "HILUM", "host": "127.0.0.1", "port": 11112},
        "metrics": {
            "grpc": "http://127.0.0.1:9101/metrics", "inference-worker": "http://127.0.0.1:9103/metrics",
            "ingestion-priors-publishing-worker": "http://127.0.0.1:9104/metrics",
            "reporting-worker": "http://127.0.0.1:9105/metrics",
            "cds": "http://127.0.0.1:8080/metrics",
        },
    }
    assert endpoints.model_extra == {}  # every door is a typed field of the model


def test_every_door_names_the_setting_that_moves_it(loopback: HilumSettings) -> None:
    env = settings_env(loopback)
    doors = stack_doors(loopback)
    # STOW-RS, FHIR and the CDS app's metrics share the CDS port; every other process has a metrics port of its own.
    assert len({door.port.number for door in doors}) == len(doors) - 3 == 11 + 4
    for door in doors:
        assert str(door.port.number) in env[door.port.setting], door.key
        assert str(door.port.number) in str(door.address), door.key


def test_a_door_moves_with_its_setting(default_settings: HilumSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILUM_CDS__PORT", "9080")
    monkeypatch.setenv("HILUM_GRPC__PRIORS_PORT", "9053")
    endpoints = stack_endpoints(stack_doors(HilumSettings()), 1, STARTED)
    assert endpoints.cds == "http://127.0.0.1:9080"
    assert endpoints.grpc is not None and endpoints.grpc["priors"] == "127.0.0.1:9053"


def test_no_door_answers_when_nothing_runs(loopback: HilumSettings) -> None:
    assert [door.key for door in stack_doors(loopback) if door.answers()] == []


@pytest.fixture
def health_server() -> Iterator[str]:
    """A gRPC server with only the health service, SERVING."""
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [], lambda server: None, max_message_bytes=1024)
    yield address
    server.stop(None)


def test_redis_and_grpc_doors_answer_when_their_servers_do(loopback: HilumSettings, redis_server: RedisServer,
                                                           health_server: str) -> None:
    port = int(health_server.rsplit(":", 1)[1])
    settings = loopback.model_copy(update={
        "redis": RedisSection(url=redis_server.url),
        "grpc": loopback.grpc.model_copy(update={"inference_port": port}),
    })
    answering = {door.key for door in stack_doors(settings) if door.answers()}
    assert answering == {"redis", "grpc.inference"}


def test_preflight_passes_on_free_ports_and_a_stale_file(loopback: HilumSettings) -> None:
    write_endpoints(loopback.storage.data_dir, Endpoints(pid=2 ** 22 + 1, started_at=STARTED))  # above pid_max
    preflight(loopback)


def test_preflight_refuses_a_data_directory_a_live_stack_uses(loopback: HilumSettings) -> None:
    data_dir = loopback.storage.data_dir
    write_endpoints(data_dir, Endpoints(pid=os.getpid(), started_at=STARTED))
    with pytest.raises(StackAlreadyRunning, match=(
        f"^a stack is already running from {data_dir} \\(pid {os.getpid()}\\); its doors are in "
        f"{endpoints_path(data_dir)}$"
    )):
        preflight(loopback)


def test_preflight_names_a_taken_port_and_its_setting(loopback: HilumSettings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", loopback.grpc.reporting_port))
        taken.listen()
        with pytest.raises(PortInUse, match=(
            f"^port {loopback.grpc.reporting_port} is already in use \\(set HILUM_GRPC__REPORTING_PORT to move "
            "the reporting gRPC service\\)$"
        )):
            preflight(loopback)


def test_preflight_names_a_taken_metrics_port_and_its_setting(loopback: HilumSettings) -> None:
    port = loopback.metrics.process_ports["ingestion-priors-publishing-worker"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(PortInUse, match=(
            f"^port {port} is already in use \\(set HILUM_METRICS__PROCESS_PORTS to move the "
            "ingestion-priors-publishing-worker "
            "metrics endpoint\\)$"
        )):
            preflight(loopback)


def test_preflight_refuses_ports_that_every_process_of_the_stack_would_share(loopback: HilumSettings) -> None:
    shared = loopback.model_copy(update={"grpc": loopback.grpc.model_copy(update={"health_port": 8086})})
    with pytest.raises(PortUnavailable, match="^HILUM_GRPC__HEALTH_PORT is for one process per host"):
        preflight(shared)
    shared = loopback.model_copy(update={"metrics": loopback.metrics.model_copy(update={"port": 9090})})
    with pytest.raises(PortUnavailable, match="^HILUM_METRICS__PORT is for one process per host"):
        preflight(shared)


def test_a_stack_is_built_without_touching_the_disk(loopback: HilumSettings) -> None:
    stack = EmbeddedStack(loopback)
    assert [child.name for child in stack.children] == [
        "grpc", "inference-worker", "ingestion-priors-publishing-worker", "reporting-worker", "cds",
    ]
    commands = {child.name: child.argv[3:] for child in stack.children}  # after `python -m hilum.cli`
    assert commands["grpc"] == [
        "serve", "ingestion", "inference", "priors", "reporting", "publishing", "assembler", "dicom"]
    assert commands["reporting-worker"] == ["worker", "reporting"]
    assert commands["ingestion-priors-publishing-worker"] == ["worker", "ingestion", "priors", "publishing"]
    assert not loopback.storage.data_dir.exists()
    assert stack.urls()["cds"] == stack.cds_url == f"http://127.0.0.1:{loopback.cds.port}"


def test_each_process_serves_metrics_on_its_own_port_and_each_worker_counts_in_its_own_folder(
    loopback: HilumSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "/tmp/shared-by-everyone")
    stack = EmbeddedStack(loopback)
    env = {child.name: child.env or {} for child in stack.children}
    ports = loopback.metrics.process_ports
    assert {name: int(child_env["HILUM_METRICS__PORT"]) for name, child_env in env.items()} == {**ports, "cds": 0}
    folders = {name: child_env.get(MULTIPROC_ENV) for name, child_env in env.items()}
    data_dir = loopback.storage.data_dir
    assert folders == {name: str(data_dir / "prometheus" / name) if name.endswith("-worker") else None
                       for name in env}
    metrics_doors = {door.key: door for door in stack.doors if door.key.startswith("metrics.")}
    assert {key: (door.address, door.port.number) for key, door in metrics_doors.items()} == {
        **{f"metrics.{name}": (f"http://127.0.0.1:{port}/metrics", port) for name, port in ports.items()},
        "metrics.cds": (f"{stack.cds_url}/metrics", loopback.cds.port),
    }


def test_stack_processes_start_with_the_malloc_settings_unless_told_otherwise_and_the_image_sets_the_same(
    loopback: HilumSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two arenas, and image-sized buffers from the heap instead of fresh mappings (stack.PROCESS_DEFAULTS)."""
    for name in PROCESS_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    expected = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "134217728"}
    children = [child.env for child in EmbeddedStack(loopback).children if child.env]
    assert children and all({name: env[name] for name in expected} == expected for env in children)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert {child.env["MALLOC_ARENA_MAX"] for child in EmbeddedStack(loopback).children if child.env} == {"4"}
    image_env = (REPO_ROOT / "Dockerfile").read_text()
    assert all(f"{name}={value}" in image_env for name, value in expected.items())


def test_a_failed_start_stops_what_started_and_writes_no_file(loopback: HilumSettings) -> None:
    stack = EmbeddedStack(loopback)  # its Triton server venv does not exist
    with pytest.raises(TritonNotInstalled):
        stack.start(timeout_s=10)
    assert not stack.redis.running
    assert is_free("127.0.0.1", redis_port(loopback))
    assert read_endpoints(loopback.storage.data_dir) is None
    assert stack.endpoints is None


def test_stopping_a_stack_that_never_started_leaves_another_stacks_file(loopback: HilumSettings) -> None:
    data_dir = loopback.storage.data_dir
    theirs = Endpoints(pid=os.getpid(), started_at=STARTED, cds="http://127.0.0.1:1")
    write_endpoints(data_dir, theirs)
    EmbeddedStack(loopback).stop()
    assert read_endpoints(data_dir) == theirs


@pytest.mark.parametrize(("url", "port"), [("redis://127.0.0.1:6390/0", 6390), ("redis://localhost/0", 6379)])
def test_redis_port_comes_from_the_url(url: str, port: int) -> None:
    assert redis_port(HilumSettings(redis=RedisSection(url=url), triton=TritonSection())) == port
