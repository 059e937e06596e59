"""A real Celery worker on a real Redis: protobuf payloads, retries with backoff, dead letters, forwarding."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis as redis_lib
from celery.contrib.testing.worker import start_worker
from google.protobuf.message import Message

from hilum.common.errors import PermanentError, TransientError
from hilum.common.queue import Stage, create_celery_app, enqueue, register_stage_task
from hilum.common.settings import HilumSettings, RedisSection
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2

pytestmark = pytest.mark.integration


def _wait(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_stage_task_retries_forwards_and_dead_letters(redis_server: RedisServer,
                                                     redis_client: redis_lib.Redis) -> None:
    app = create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url)), name="queue-test")
    attempts: dict[str, int] = {}
    dead: list[tuple[str, str]] = []

    def core(reference: messages_pb2.StudyReference) -> messages_pb2.StudyFindings:
        uid = reference.study_instance_uid
        attempts[uid] = attempts.get(uid, 0) + 1
        if uid == "1.1" and attempts[uid] < 3:
            raise TransientError("Triton restarting")
        if uid == "2.2":
            raise PermanentError("image unreadable")
        if uid == "3.3":
            raise TransientError("never recovers")
        return messages_pb2.StudyFindings(study=reference)

    def sink(stage: Stage, message: Message, error: str) -> None:
        assert isinstance(message, messages_pb2.StudyReference)
        dead.append((message.study_instance_uid, error))

    register_stage_task(app, Stage.INFERENCE, messages_pb2.StudyReference, lambda: core, Stage.PRIORS,
                        lambda: sink, max_retries=2, backoff_cap_s=1)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["inference"], shutdown_timeout=10):
        for uid in ("1.1", "2.2", "3.3"):
            enqueue(app, Stage.INFERENCE, messages_pb2.StudyReference(study_instance_uid=uid))
        _wait(lambda: len(dead) == 2 and redis_client.llen("priors") == 1)

    assert attempts == {"1.1": 3, "2.2": 1, "3.3": 3}  # two retries after the first try
    assert sorted(dead) == [("2.2", "image unreadable"), ("3.3", "retries exhausted: never recovers")]
    forwarded = redis_client.lrange("priors", 0, -1)
    assert len(forwarded) == 1 and b"hilum.priors.run" in forwarded[0]
