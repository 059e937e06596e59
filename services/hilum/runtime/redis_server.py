"""A private Redis for the embedded stack: loopback only, AOF persistence, and no eviction of queued work."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from hilum.common.polling import wait_until
from hilum.runtime.processes import ManagedProcess, ProcessFailed

BIND_ADDRESS = "127.0.0.1"
POLL_INTERVAL_S = 0.1


class RedisServer:
    """redis-server on 127.0.0.1:port keeping its append-only file in data_dir."""

    def __init__(self, port: int, data_dir: Path, log_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ProcessFailed("redis-server is not installed; run scripts/setup.sh (it installs it)")
        self.port = port
        self.data_dir = data_dir
        self.url = f"redis://{BIND_ADDRESS}:{port}/0"
        self._process = ManagedProcess("redis", [
            binary, "--port", str(port), "--bind", BIND_ADDRESS, "--dir", str(data_dir.resolve()),
            "--appendonly", "yes", "--appendfsync", "always",
            # Queued studies must never be evicted to make room: fail writes loudly instead.
            "--maxmemory-policy", "noeviction",
            "--save", "", "--protected-mode", "yes",
        ], log_path)

    def start(self, timeout_s: float = 20.0) -> None:
        """Launch redis-server and wait until it answers PING; raises ProcessFailed with its log tail."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process.start()
        try:
            wait_until(self.answers, timeout_s, POLL_INTERVAL_S, f"redis-server on {BIND_ADDRESS}:{self.port} "
                       "to answer PING", on_poll=self._raise_if_exited)
        except TimeoutError as exc:
            raise ProcessFailed(f"{exc}:\n{self._process.log_tail()}") from exc

    def answers(self) -> bool:
        """Whether the server answers PING now."""
        return answers_ping(self.url)

    @property
    def running(self) -> bool:
        return self._process.running

    def log_tail(self) -> str:
        return self._process.log_tail()

    def stop(self) -> None:
        self._process.stop()

    def kill(self) -> None:
        """SIGKILL redis-server now, as a crash would; start() runs it again on the same append-only file."""
        self._process.kill()

    def _raise_if_exited(self) -> None:
        if self._process.exited() is not None:
            raise ProcessFailed(f"redis-server exited:\n{self._process.log_tail()}")


def answers_ping(url: str) -> bool:
    """Whether the Redis at url answers PING now."""
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()
