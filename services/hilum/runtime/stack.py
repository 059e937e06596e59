"""The embedded stack on loopback: Redis, Triton, the four services (gRPC + worker each) and the CDS app.

Started in dependency order, checked for health, stopped in reverse order. Children read their
settings from the HILUM_* environment this supervisor gives them.
"""

from __future__ import annotations

import os
import sys
import time

import httpx

from hilum.common.grpc_server import is_serving
from hilum.common.settings import HilumSettings, settings_env
from hilum.runtime.entrypoints import SERVICES
from hilum.runtime.processes import ManagedProcess
from hilum.runtime.redis_server import RedisServer
from hilum.runtime.triton import TritonServer


def redis_port(settings: HilumSettings) -> int:
    """The port of the Redis URL in settings."""
    return int(settings.redis.url.rsplit(":", 1)[1].split("/")[0])


class EmbeddedStack:
    """Everything `hilum demo` needs, as child processes of this one."""

    def __init__(self, settings: HilumSettings) -> None:
        self.settings = settings
        data_dir = settings.storage.data_dir
        self.log_dir = data_dir / "logs"
        self.redis = RedisServer(redis_port(settings), data_dir / "redis", self.log_dir / "redis.log")
        self.triton = TritonServer(settings.triton, data_dir / "triton", self.log_dir / "triton.log")
        env = {**os.environ, **settings_env(settings)}
        hilum = [sys.executable, "-m", "hilum.cli"]
        self.children: list[ManagedProcess] = []
        for name in SERVICES:
            self.children.append(ManagedProcess(f"{name}-grpc", [*hilum, "serve", name],
                                                self.log_dir / f"{name}-grpc.log", env))
            self.children.append(ManagedProcess(f"{name}-worker", [*hilum, "worker", name],
                                                self.log_dir / f"{name}-worker.log", env))
        self.children.append(ManagedProcess("cds", [*hilum, "serve", "cds"], self.log_dir / "cds.log", env))

    @property
    def cds_url(self) -> str:
        return f"http://{self.settings.cds.host}:{self.settings.cds.port}"

    def start(self, timeout_s: float = 180.0) -> None:
        """Start everything and wait until every part reports healthy; on failure, stop what started."""
        try:
            self.redis.start()
            self.triton.start()
            for child in self.children:
                child.start()
            self._wait_healthy(timeout_s)
            self.triton.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def check_alive(self) -> None:
        """Raise naming the first part of the stack that has stopped, with the end of its log."""
        for child in self.children:
            if child.exited() is not None:
                raise RuntimeError(f"{child.name} stopped (exit {child.exited()}):\n{child.log_tail()}")
        if not self.triton.running:
            raise RuntimeError(f"tritonserver stopped:\n{self.triton.log_tail()}")
        if not self.redis.running:
            raise RuntimeError(f"redis-server stopped:\n{self.redis.log_tail()}")

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = {name: self.settings.grpc.address(spec.port(self.settings)) for name, spec in SERVICES.items()}
        cds_ready = False
        while time.monotonic() < deadline:
            for child in self.children:
                if child.exited() is not None:
                    raise RuntimeError(f"{child.name} exited during start-up:\n{child.log_tail()}")
            pending = {name: addr for name, addr in pending.items() if not is_serving(addr)}
            cds_ready = cds_ready or self._cds_ready()
            if not pending and cds_ready:
                return
            time.sleep(0.3)
        raise RuntimeError(f"not healthy after {timeout_s}s: {sorted(pending)}{'' if cds_ready else ' cds'}")

    def _cds_ready(self) -> bool:
        try:
            return httpx.get(f"{self.cds_url}/cds-services", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop services first (workers finish their task), then Triton, then Redis."""
        for child in reversed(self.children):
            child.stop()
        self.triton.stop()
        self.redis.stop()

    def urls(self) -> dict[str, str]:
        """Where each part listens, for --keep-running."""
        grpc = {f"{name} gRPC": self.settings.grpc.address(spec.port(self.settings))
                for name, spec in SERVICES.items()}
        return {
            "CDS Hooks discovery": f"{self.cds_url}/cds-services",
            **grpc,
            "Triton gRPC": self.settings.triton.grpc_url,
            "Triton HTTP": f"http://127.0.0.1:{self.settings.triton.http_port}",
            "Redis": self.settings.redis.url,
            "logs": str(self.log_dir.resolve()),
        }

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
