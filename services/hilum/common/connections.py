"""Open the shared resources a service needs from its settings: database sessions, object store, Redis."""

from __future__ import annotations

import redis
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db.session import create_db_engine, session_factory
from hilum.common.object_store import ObjectStore
from hilum.common.settings import HilumSettings


def open_sessions(settings: HilumSettings) -> sessionmaker[Session]:
    return session_factory(create_db_engine(settings.database_url))


def open_object_store(settings: HilumSettings) -> ObjectStore:
    return ObjectStore(settings.storage.objects_dir)


def open_redis(settings: HilumSettings, timeout_s: float | None = None) -> redis.Redis:
    """A Redis client; with `timeout_s`, a call to an unresponsive Redis fails after that long instead of hanging."""
    return redis.Redis.from_url(settings.redis.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
