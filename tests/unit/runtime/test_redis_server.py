"""The embedded Redis keeps queued work: append-only file on, written through (a crash loses nothing acknowledged),
and no eviction under memory pressure."""

from __future__ import annotations

from pathlib import Path

import redis as redis_lib

from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer


def test_aof_and_noeviction(redis_server: RedisServer) -> None:
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_a_killed_redis_starts_again_with_every_write_it_acknowledged(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path / "redis", tmp_path / "redis.log")
    server.start()
    try:
        client = redis_lib.Redis.from_url(server.url, decode_responses=True)
        client.lpush("inference", *(f"message-{n}" for n in range(100)))  # acknowledged: fsynced (always)
        server.kill()
        assert not server.running
        server.start()
        assert client.llen("inference") == 100
    finally:
        server.stop()
