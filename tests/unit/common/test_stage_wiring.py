"""The stage wiring: results are handed to the next stage's queue (a real Redis), failures to do so are
transient, the last stage forwards nothing, and a queue task settles only after its handoff; a worker's pool
is prefork unless the wiring says otherwise, and a task's core is built once however many threads ask."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import redis as redis_lib

from hilum.common.errors import TransientError
from hilum.common.queue import Stage, create_celery_app
from hilum.common.settings import HilumSettings, QueueSection, RedisSection
from hilum.common.stage_wiring import Forward, StageWiring, once
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2


def _no_servicer(core: object, forward: Forward[messages_pb2.StudyFindings], server: grpc.Server) -> None:
    """These tests exercise the queue side only."""


def _wiring(next_stage: Stage | None) -> StageWiring[object, messages_pb2.StudyReference, messages_pb2.StudyFindings]:
    return StageWiring(
        stage=Stage.INFERENCE, build=lambda _settings: object(),
        add_servicer=_no_servicer, task_input=messages_pb2.StudyReference,
        task=lambda _core: lambda ref: messages_pb2.StudyFindings(study=ref),
        next_stage=next_stage, handoff=lambda findings: [findings, findings],
    )


def _settings(url: str) -> HilumSettings:
    return HilumSettings(redis=RedisSection(url=url))


def test_forward_enqueues_every_handoff_message_on_the_next_queue(
    redis_server: RedisServer, redis_client: redis_lib.Redis
) -> None:
    forward = _wiring(Stage.PRIORS).forwarder(create_celery_app(_settings(redis_server.url)))
    result = messages_pb2.StudyFindings(study=messages_pb2.StudyReference(study_instance_uid="1.2.3"))
    assert forward(result) is result
    queued = redis_client.lrange("priors", 0, -1)
    assert len(queued) == 2 and all(b"hilum.priors.run" in message for message in queued)
    assert all(b"1.2.3" not in message for message in queued)  # headers name the study by its hashed ref


def test_the_last_stage_forwards_nothing(redis_server: RedisServer, redis_client: redis_lib.Redis) -> None:
    forward = _wiring(None).forwarder(create_celery_app(_settings(redis_server.url)))
    forward(messages_pb2.StudyFindings())
    assert redis_client.keys("*") == []


def test_an_unreachable_broker_is_a_transient_error() -> None:
    app = create_celery_app(_settings(f"redis://127.0.0.1:{free_port()}/0"))
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "max_retries": 0}
    app.conf.broker_connection_max_retries = 0
    forward = _wiring(Stage.PRIORS).forwarder(app)
    with pytest.raises(TransientError, match="could not enqueue priors"):
        forward(messages_pb2.StudyFindings())


def test_a_stage_worker_is_prefork_with_worker_concurrency_above_one_unless_its_wiring_says_otherwise() -> None:
    settings = HilumSettings(queue=QueueSection(worker_concurrency=3, inference_concurrency=5))
    assert _wiring(None).worker_pool(settings) == ("prefork", 3)
    # One task at a time: in a thread of the worker itself, one process instead of a parent and its child.
    assert _wiring(None).worker_pool(HilumSettings(queue=QueueSection(worker_concurrency=1))) == ("threads", 1)
    threaded = dataclasses.replace(_wiring(None), pool="threads", concurrency=lambda queue: queue.inference_concurrency)
    assert threaded.worker_pool(settings) == ("threads", 5)


def test_once_makes_its_value_once_when_threads_ask_together() -> None:
    made: list[object] = []
    started = threading.Barrier(8)

    def slow_factory() -> object:
        time.sleep(0.05)  # long enough for every thread to ask before the first answer
        made.append(object())
        return made[-1]

    get = once(slow_factory)

    def ask() -> object:
        started.wait()
        return get()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: ask(), range(8)))
    assert len(made) == 1 and all(answer is made[0] for answer in answers)


def test_once_tries_again_after_a_failure() -> None:
    attempts: list[int] = []

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database not up yet")
        return 42

    get = once(flaky)
    with pytest.raises(ConnectionError):
        get()
    assert get() == 42 and get() == 42 and len(attempts) == 2
