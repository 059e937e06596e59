"""The embedded Redis keeps queued work: append-only file on, and no eviction under memory pressure."""

from __future__ import annotations

import redis as redis_lib

from hilum.runtime.redis_server import RedisServer


def test_aof_and_noeviction(redis_server: RedisServer) -> None:
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("bind")["bind"] == "127.0.0.1"
