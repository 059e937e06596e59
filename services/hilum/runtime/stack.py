"""The embedded stack on loopback: Redis, Triton, the five stages (one gRPC process, which also runs the DICOM SCP and
the assembler, and four workers: priors and publishing share one) and the CDS app.

Nothing starts unless every port is free. Parts start in dependency order; once every door answers,
the stack writes endpoints.json in its data directory. It stops in reverse order, removing the file
first. Children read their settings from the HILUM_* environment this supervisor gives them, each with
its own metrics port (settings.metrics.process_ports).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from hilum.common.addresses import is_loopback
from hilum.common.grpc_server import is_serving
from hilum.common.metrics import MULTIPROC_ENV
from hilum.common.polling import wait_until
from hilum.common.settings import HilumSettings, settings_env
from hilum.ingestion import dimse_scp
from hilum.ingestion.stow import DICOMWEB_PREFIX
from hilum.runtime import redis_server, triton
from hilum.runtime.endpoints import (
    DicomEndpoint,
    Endpoints,
    endpoints_path,
    live_endpoints,
    remove_endpoints,
    write_endpoints,
)
from hilum.runtime.entrypoints import COMPANIONS, STAGE_NAMES
from hilum.runtime.ports import Port, PortUnavailable, ensure_free
from hilum.runtime.processes import ManagedProcess, ProcessFailed
from hilum.runtime.redis_server import RedisServer
from hilum.runtime.triton import TritonServer

DOOR_POLL_INTERVAL_S = 0.3
START_TIMEOUT_S = 180.0
REDIS_DEFAULT_PORT = 6379


class StackAlreadyRunning(RuntimeError):
    """A live stack already uses this data directory (its endpoints.json names a running process)."""


@dataclass(frozen=True)
class Door:
    """One way into the running stack: its key in endpoints.json ("cds", "grpc.inference"), its address
    there, the port it listens on, and how to tell that it answers.
    """

    key: str
    address: str | DicomEndpoint
    port: Port
    answers: Callable[[], bool]


# Environment every Hilum process of the stack starts with unless the caller's says otherwise (the container image sets
# the same):
# - glibc gives each thread that allocates its own malloc arena, and gRPC servers and threaded workers then hold freed
#   image buffers in many of them; two arenas keep a process's memory near what it uses (about 10% less for the stack);
# - glibc maps each allocation above its mmap threshold (128 KiB at first, at most 32 MiB) afresh and unmaps it when
#   freed, so every image buffer of 10-20 MB (the request, the parsed Pixel Data, the decoded image) paid the kernel
#   for zeroed pages it had just given back. Buffers up to 64 MiB come from the heap, which keeps up to 128 MiB of
#   freed memory for the next image instead of returning it (the acceptance of an instance: 15% less CPU).
PROCESS_DEFAULTS = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(64 * 2**20),
                    "MALLOC_TRIM_THRESHOLD_": str(128 * 2**20)}
# The one process of the stack that serves the five stages' gRPC doors, each on its own port, and runs the DICOM SCP
# and the assembler in threads: four of the doors only answer direct callers, the assembler only polls, and a
# process each would cost 100-130 MB apiece, mostly for imports.
GRPC_PROCESS = "grpc"
# The stack's Celery workers, by the stages each serves: ingestion's queue door, priors and publishing share one, since
# all three run threads that wait on the database, on files or on destinations, and a process each cost 110-180 MB,
# mostly for imports.
STACK_WORKERS: dict[str, tuple[str, ...]] = {
    "-".join(stages) + "-worker": stages
    for stages in (("inference",), ("ingestion", "priors", "publishing"), ("reporting",))
}


def stack_process_names() -> list[str]:
    """The stack's Hilum processes by name, in start order: the five stages' gRPC servers with the DICOM SCP and the
    assembler (one process), the workers (STACK_WORKERS), then the CDS app."""
    return [GRPC_PROCESS, *STACK_WORKERS, "cds"]


def process_command(name: str) -> list[str]:
    """The `hilum` arguments that run the stack process called name."""
    if name == GRPC_PROCESS:
        return ["serve", *STAGE_NAMES, *COMPANIONS]
    if name in STACK_WORKERS:
        return ["worker", *STACK_WORKERS[name]]
    return ["serve", name]


def metrics_ports(settings: HilumSettings) -> dict[str, int]:
    """The port of each stack process that serves metrics on its own (settings.metrics.process_ports), in start
    order; the CDS app serves /metrics on its own HTTP port instead."""
    ports = settings.metrics.process_ports
    return {name: ports[name] for name in stack_process_names() if name in ports and name != "cds"}


def stack_doors(settings: HilumSettings) -> list[Door]:
    """Every door of a stack with these settings, in start-up order: its key and address in endpoints.json,
    its port and the setting that moves it, and how to tell it answers. Adding a door is one entry here.
    """
    grpc, cds, models, dicom = settings.grpc, settings.cds, settings.triton, settings.dicom
    cds_url = f"http://{cds.host}:{cds.port}"
    cds_port = Port(cds.host, cds.port, "HILUM_CDS__PORT", "the CDS Hooks service")
    stow_url = f"{cds_url}{DICOMWEB_PREFIX}/studies"
    triton_host = triton.BIND_ADDRESS
    triton_http = f"http://{triton_host}:{models.http_port}"
    triton_metrics = f"http://{triton_host}:{models.metrics_port}/metrics"
    stages = {name: grpc.address(grpc.port_for(name)) for name in STAGE_NAMES}
    metrics_host = settings.metrics.host
    metrics = {name: (f"http://{metrics_host}:{port}/metrics", port) for name, port in metrics_ports(settings).items()}
    return [
        Door("redis", settings.redis.url,
             Port(redis_server.BIND_ADDRESS, redis_port(settings), "HILUM_REDIS__URL", "Redis"),
             partial(redis_server.answers_ping, settings.redis.url)),
        Door("triton.grpc", models.grpc_url,
             Port(triton_host, triton.grpc_port(models), "HILUM_TRITON__GRPC_URL", "Triton's gRPC endpoint"),
             partial(triton.is_ready, models)),
        Door("triton.http", triton_http,
             Port(triton_host, models.http_port, "HILUM_TRITON__HTTP_PORT", "Triton's HTTP endpoint"),
             partial(_http_ok, f"{triton_http}/v2/health/ready")),
        Door("triton.metrics", triton_metrics,
             Port(triton_host, models.metrics_port, "HILUM_TRITON__METRICS_PORT", "Triton's metrics endpoint"),
             partial(_http_ok, triton_metrics)),
        *(Door("ingestion_grpc" if name == "ingestion" else f"grpc.{name}", address,
               Port(grpc.host, grpc.port_for(name), f"HILUM_GRPC__{name.upper()}_PORT", f"the {name} gRPC service"),
               partial(is_serving, address, section=grpc))
          for name, address in stages.items()),
        Door("cds", cds_url, cds_port, partial(_http_ok, f"{cds_url}/cds-services")),
        # The FHIR read API is served by the CDS app on its port; its CapabilityStatement needs no token.
        Door("fhir", f"{cds_url}/fhir", cds_port, partial(_http_ok, f"{cds_url}/fhir/metadata")),
        # STOW-RS is served by the CDS app on its port: a GET of the store resource answers 405, not 404.
        Door("stow", stow_url, cds_port, partial(_http_status_is, stow_url, 405)),
        Door("dicom", DicomEndpoint(ae_title=dicom.ae_title, host=dicom.host, port=dicom.port),
             Port(dicom.host, dicom.port, "HILUM_DICOM__PORT", "the DICOM (DIMSE) SCP"),
             partial(dimse_scp.answers, dicom)),
        *(Door(f"metrics.{name}", url,
               Port(metrics_host, port, "HILUM_METRICS__PROCESS_PORTS", f"the {name} metrics endpoint"),
               partial(_http_ok, url))
          for name, (url, port) in metrics.items()),
        # The CDS app serves its metrics on its own port.
        Door("metrics.cds", f"{cds_url}/metrics", cds_port, partial(_http_ok, f"{cds_url}/metrics")),
    ]


def stack_endpoints(doors: list[Door], pid: int, started_at: datetime) -> Endpoints:
    """The endpoints.json of a stack: pid, start time, and each door's address under its key."""
    tree: dict[str, Any] = {"pid": pid, "started_at": started_at}
    for door in doors:
        *parents, last = door.key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = door.address
    return Endpoints.model_validate(tree)


def preflight(settings: HilumSettings) -> None:
    """Refuse to start, before anything is started, when a live stack already uses the data directory
    (StackAlreadyRunning) or a port is taken or set twice (PortUnavailable).
    """
    data_dir = settings.storage.data_dir
    running = live_endpoints(data_dir)
    if running is not None:
        raise StackAlreadyRunning(f"a stack is already running from {data_dir} (pid {running.pid}); "
                                  f"its doors are in {endpoints_path(data_dir)}")
    # Ports meant for one process per host (a Kubernetes pod): the stack's processes would all bind the same one.
    for port, variable in ((settings.grpc.health_port, "HILUM_GRPC__HEALTH_PORT"),
                           (settings.metrics.port, "HILUM_METRICS__PORT")):
        if port:
            raise PortUnavailable(f"{variable} is for one process per host (Kubernetes); the embedded stack runs "
                                  "many on this host: leave it at 0")
    ensure_free(dict.fromkeys(door.port for door in stack_doors(settings)))  # a port two doors share, once


def redis_port(settings: HilumSettings) -> int:
    """The port of the Redis URL in settings."""
    return urlsplit(settings.redis.url).port or REDIS_DEFAULT_PORT


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _http_status_is(url: str, status: int) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == status
    except httpx.HTTPError:
        return False


def _empty_dir(path: Path) -> None:
    """Make path an empty folder, removing what an earlier run left there."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def embedded_fhir_api(settings: HilumSettings) -> HilumSettings:
    """The embedded stack's FHIR read API is open (no token) while the CDS app listens on loopback and no API
    client is registered; otherwise the settings are kept as they are."""
    if settings.fhir_api.clients or not is_loopback(settings.cds.host):
        return settings
    return settings.model_copy(update={"fhir_api": settings.fhir_api.model_copy(update={"open_on_loopback": True})})


class EmbeddedStack:
    """Everything `hilum up` and `hilum demo` run, as child processes of this one; `with` starts and stops it."""

    def __init__(self, settings: HilumSettings, clock: Callable[[], datetime] = _utc_now) -> None:
        settings = embedded_fhir_api(settings)
        self.settings = settings
        self.data_dir = settings.storage.data_dir
        self.log_dir = self.data_dir / "logs"
        self.doors = stack_doors(settings)
        self.endpoints: Endpoints | None = None
        self._clock = clock
        self.redis = RedisServer(redis_port(settings), self.data_dir / "redis", self.log_dir / "redis.log")
        self.triton = TritonServer(settings.triton, self.data_dir / "triton", self.log_dir / "triton.log")
        env = {**PROCESS_DEFAULTS, **os.environ, **settings_env(settings)}
        env.pop(MULTIPROC_ENV, None)  # one folder for every process would add up all their counts
        ports = metrics_ports(settings)
        # Each worker its own multiprocess folder (emptied at start): its pool processes' counts reach its endpoint.
        self.metrics_dirs = {name: self.data_dir / "prometheus" / name for name in ports if name.endswith("-worker")}
        hilum = [sys.executable, "-m", "hilum.cli"]
        self.children: list[ManagedProcess] = []
        for name in stack_process_names():
            command = process_command(name)
            child_env = {**env, "HILUM_METRICS__PORT": str(ports.get(name, 0))}
            if name in self.metrics_dirs:
                child_env[MULTIPROC_ENV] = str(self.metrics_dirs[name])
            self.children.append(ManagedProcess(name, [*hilum, *command], self.log_dir / f"{name}.log", child_env))

    @property
    def cds_url(self) -> str:
        return f"http://{self.settings.cds.host}:{self.settings.cds.port}"

    def start(self, timeout_s: float = START_TIMEOUT_S, check: Callable[[], None] | None = None) -> Endpoints:
        """Start everything, wait until every door answers, then write endpoints.json; returns its content.

        Raises StackAlreadyRunning or PortUnavailable before starting anything; ProcessFailed when a part
        stops during start-up; TimeoutError naming the doors that did not answer within timeout_s. check
        runs on every poll and may raise to abandon start-up (a stop signal). On any failure, what started
        is stopped again.
        """
        preflight(self.settings)
        started_at = self._clock().replace(microsecond=0)
        try:
            self.redis.start()
            self.triton.start()
            for child in self.children:
                if child.name in self.metrics_dirs:
                    _empty_dir(self.metrics_dirs[child.name])
                child.start()
            self._wait_for_doors(timeout_s, check)
            self.endpoints = stack_endpoints(self.doors, os.getpid(), started_at)
            write_endpoints(self.data_dir, self.endpoints)
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def check_alive(self) -> None:
        """Raise ProcessFailed naming the first part of the stack that has stopped, with the end of its log."""
        for child in self.children:
            if child.exited() is not None:
                raise ProcessFailed(f"{child.name} stopped (exit {child.exited()}):\n{child.log_tail()}")
        if not self.triton.running:
            raise ProcessFailed(f"tritonserver stopped:\n{self.triton.log_tail()}")
        if not self.redis.running:
            raise ProcessFailed(f"redis-server stopped:\n{self.redis.log_tail()}")

    def _wait_for_doors(self, timeout_s: float, check: Callable[[], None] | None) -> None:
        pending = list(self.doors)

        def every_door_answers() -> bool:
            pending[:] = [door for door in pending if not door.answers()]
            return not pending

        def poll() -> None:
            if check is not None:
                check()
            self.check_alive()

        wait_until(every_door_answers, timeout_s, DOOR_POLL_INTERVAL_S,
                   lambda: f"{', '.join(door.key for door in pending)} to answer (logs in {self.log_dir})",
                   on_poll=poll)

    def stop(self) -> None:
        """Remove endpoints.json (the doors are closing), then stop in reverse order of start: the CDS app
        and the stages (SIGTERM to each in turn, then wait for each: workers finish their task, together
        rather than one after another), then Triton, then Redis.
        """
        if self.endpoints is not None:
            remove_endpoints(self.data_dir)
            self.endpoints = None
        for child in reversed(self.children):
            child.terminate()
        for child in reversed(self.children):
            child.stop()
        self.triton.stop()
        self.redis.stop()

    def urls(self) -> dict[str, str]:
        """Where each door listens, and where the logs are, for a person."""
        return {**{door.key: str(door.address) for door in self.doors}, "logs": str(self.log_dir.resolve())}

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
