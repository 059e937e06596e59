"""Celery wiring shared by every stage: the app, its reliability settings, and protobuf payloads.

A queue is named after the stage that consumes it. Payloads are serialized protobuf messages sent
as msgpack bytes, never ad-hoc dicts. Each stage registers one task that decodes its input message,
calls the stage's core function (the same one its gRPC servicer calls) and hands the result on
(see hilum.common.stage_wiring).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from celery import Celery, Task
from google.protobuf.message import Message

from hilum.common.errors import PermanentError, TransientError
from hilum.common.logs import study_ref
from hilum.common.settings import HilumSettings
from hilum.common.tracing import mark_study
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)

In = TypeVar("In", bound=Message)


class Stage(StrEnum):
    """Pipeline stages; each consumes the queue of the same name."""

    INGESTION = "ingestion"
    INFERENCE = "inference"
    PRIORS = "priors"
    REPORTING = "reporting"
    PUBLISHING = "publishing"

    @property
    def task_name(self) -> str:
        """The Celery task that consumes this stage's queue, e.g. "hilum.priors.run"."""
        return f"hilum.{self.value}.run"

    @property
    def grpc_service(self) -> str:
        """The full name of this stage's gRPC service (proto/hilum/v1), e.g. "hilum.v1.PriorsService"."""
        return f"hilum.v1.{self.value.capitalize()}Service"


def create_celery_app(settings: HilumSettings, name: str = "hilum") -> Celery:
    """A Celery app on Redis configured so that nothing accepted is lost and no task is lost to a crash."""
    app = Celery(name, broker=settings.redis.url)
    queue = settings.queue
    app.conf.update(
        task_serializer="msgpack",
        accept_content=["msgpack"],
        task_ignore_result=True,
        # Ack only after the task finished, and requeue if the worker process died mid-task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=queue.worker_concurrency,
        task_time_limit=queue.task_time_limit_s,
        task_routes={stage.task_name: {"queue": stage.value} for stage in Stage},
        broker_connection_retry_on_startup=True,
        # Every stage's worker runs threads, which cannot cancel a running task: asked to on a broker outage, Celery
        # 5.6 raises from the pool and the worker stops. The task finishes instead; its ack is lost with the
        # connection, and Redis hands the message out again after the visibility timeout (every stage is idempotent,
        # so a repeat costs its work, never a second result).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={
            # Must exceed the longest task, or Redis hands a running task to a second worker.
            "visibility_timeout": queue.visibility_timeout_s,
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
    )
    if queue.visibility_timeout_s <= queue.task_time_limit_s:
        raise ValueError("queue.visibility_timeout_s must exceed queue.task_time_limit_s")
    return app


def enqueue(app: Celery, stage: Stage, message: Message) -> None:
    """Publish message to stage's queue (a protobuf message, serialized).

    argsrepr replaces the payload wherever Celery shows task arguments (logs, events, inspect), since
    the payload holds study UIDs.
    """
    send_payload(app, stage, message.SerializeToString(), type(message).__name__, study_uid_of(message))


def send_payload(app: Celery, stage: Stage, payload: bytes, message_type: str, study_instance_uid: str) -> None:
    """Publish an already serialized message (of message_type, about the study) to stage's queue, e.g. a dead letter
    replayed; Celery shows only "<type study_ref=...>" in place of the payload."""
    label = f"<{message_type} study_ref={study_ref(study_instance_uid)}>"
    app.send_task(stage.task_name, args=[payload], queue=stage.value, argsrepr=label)


def study_uid_of(message: Message) -> str:
    """The Study Instance UID a queue message is about, or "" for messages not tied to one study."""
    if isinstance(message, messages_pb2.StudyReference):
        return message.study_instance_uid
    if isinstance(message, messages_pb2.StudyFindings):
        return message.study.study_instance_uid
    if isinstance(message, messages_pb2.PriorComparison):
        return message.current.study.study_instance_uid
    if isinstance(message, messages_pb2.DeliveryRequest):
        return message.study_instance_uid
    return ""


def backoff_s(retries: int, cap_s: int) -> float:
    """Exponential backoff with jitter: about 1, 2, 4, ... seconds, capped."""
    return float(min(cap_s, 2**retries)) + random.uniform(0, 0.5)


DeadLetterSink = Callable[[Stage, Message, str], None]


def register_stage_task(
    app: Celery,
    stage: Stage,
    input_type: type[In],
    handler: Callable[[], Callable[[In], None]],
    dead_letter: Callable[[], DeadLetterSink],
    max_retries: int,
    backoff_cap_s: int,
) -> Task:
    """Register the task of `stage`: decode the message and hand it to the stage's handler, which runs
    the core function and forwards its result (see StageWiring.register_task).

    handler and dead_letter are factories called inside the worker process (after fork), so that
    database engines and gRPC channels are never shared across processes. A failure to forward is
    retried like any transient error: the stage is idempotent, so running it again is safe.
    """

    def retry_or_dead_letter(task: Task, exc: Exception, message: Message, ref: str) -> None:
        """Retry with backoff, or record a dead letter once the retries are spent."""
        if task.request.retries >= max_retries:
            log.error("retries exhausted", extra={"stage": stage.value, "study_ref": ref})
            dead_letter()(stage, message, f"retries exhausted: {str(exc) or type(exc).__name__}")
            return
        log.info("stage will retry", extra={"stage": stage.value, "study_ref": ref,
                                            "retry": task.request.retries + 1})
        # Celery logs the retry's reason and traces record it: Hilum's own errors are worded without patient data, any
        # other exception (a database error quotes its parameters) is named by its type only.
        reason = exc if isinstance(exc, TransientError) else TransientError(f"unexpected {type(exc).__name__}")
        raise task.retry(exc=reason, countdown=backoff_s(task.request.retries, backoff_cap_s))

    # shared=False: the task belongs to this app only, not to every app the process creates later.
    @app.task(name=stage.task_name, bind=True, max_retries=max_retries, shared=False)  # type: ignore[untyped-decorator]
    def run(self: Task, payload: bytes) -> None:
        message = input_type.FromString(payload)
        uid = study_uid_of(message)
        ref = study_ref(uid)
        mark_study(uid)  # the trace's span for this task names its study
        try:
            handler()(message)
        except PermanentError as exc:
            log.warning("stage failed permanently", extra={"stage": stage.value, "study_ref": ref})
            dead_letter()(stage, message, str(exc))
        except TransientError as exc:
            if exc.retry_after_s is not None:  # a wait the core function bounds itself: not counted
                raise self.retry(exc=exc, countdown=exc.retry_after_s,
                                 max_retries=self.request.retries + 1) from exc
            retry_or_dead_letter(self, exc, message, ref)
        except Exception as exc:  # unexpected: retried a bounded number of times, like a transient error
            retry_or_dead_letter(self, exc, message, ref)

    registered: Task = run
    return registered
