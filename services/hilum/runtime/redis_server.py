"""A private Redis for the embedded stack: loopback only, AOF persistence, and no eviction of queued work."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from hilum.runtime.processes import ManagedProcess


class RedisServer:
    """redis-server on 127.0.0.1:port keeping its append-only file in data_dir."""

    def __init__(self, port: int, data_dir: Path, log_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run scripts/setup.sh (it installs it)")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process = ManagedProcess("redis", [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve()),
            "--appendonly", "yes", "--appendfsync", "everysec",
            # Queued studies must never be evicted to make room: fail writes loudly instead.
            "--maxmemory-policy", "noeviction",
            "--save", "", "--protected-mode", "yes",
        ], log_path)

    def start(self, timeout_s: float = 20.0) -> None:
        self._process.start()
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.exited() is not None:
                raise RuntimeError(f"redis-server exited:\n{self._process.log_tail()}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server not ready after {timeout_s}s:\n{self._process.log_tail()}")

    @property
    def running(self) -> bool:
        return self._process.running

    def log_tail(self) -> str:
        return self._process.log_tail()

    def stop(self) -> None:
        self._process.stop()
