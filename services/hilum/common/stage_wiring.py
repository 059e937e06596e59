"""The one shape every pipeline stage is wired with: its core, its gRPC door, its queue door, what goes next.

A stage's core is a typed function from one protobuf message to another. Its wiring says how the core
is built from settings, how its gRPC servicer is added to a server, which message its Celery task
takes, how its worker runs tasks (a pool of processes or of threads, and how many) and what of its
result is handed to the next stage's queue. The gRPC methods of inference and priors only compute;
reporting's Publish hands its planned deliveries to the publishing queue, exactly as its queue task
does, so that a result published by either door reaches its destinations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

import grpc
from celery import Celery
from google.protobuf.message import Message

from hilum.common.connections import open_sessions
from hilum.common.dead_letters import dead_letter_sink
from hilum.common.errors import TransientError
from hilum.common.grpc_server import DEFAULT_SERVER_THREADS, StartedServer, create_server
from hilum.common.queue import DeadLetterSink, Stage, enqueue, register_stage_task
from hilum.common.settings import HilumSettings, QueueSection

Core = TypeVar("Core")
In = TypeVar("In", bound=Message)
Out = TypeVar("Out", bound=Message)
Made = TypeVar("Made")

# Celery's pools: "prefork" runs each task in a child process, "threads" in a thread of the worker process.
WorkerPool = Literal["prefork", "threads"]


class Forward(Protocol[Out]):
    """Hands a stage's result to the next stage's queue and returns it unchanged."""

    def __call__(self, result: Out, /) -> Out: ...


class StageDoors(Protocol):
    """What a process entry point needs of a stage, whatever its message types."""

    @property
    def stage(self) -> Stage: ...

    def start_server(self, settings: HilumSettings, app: Celery) -> StartedServer: ...

    def register_task(self, app: Celery, settings: HilumSettings) -> None: ...

    def worker_pool(self, settings: HilumSettings) -> tuple[WorkerPool, int]: ...


def worker_concurrency(queue: QueueSection) -> int:
    """The concurrency of a prefork stage worker: queue.worker_concurrency processes."""
    return queue.worker_concurrency


def once(factory: Callable[[], Made]) -> Callable[[], Made]:
    """A function returning factory(), called on first use only, also when several threads first use it at once."""
    lock = threading.Lock()
    made: list[Made] = []

    def get() -> Made:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    return get


@dataclass(frozen=True)
class StageWiring(Generic[Core, In, Out]):
    """How one stage is exposed through its two doors and where its result goes."""

    stage: Stage
    next_stage: Stage | None  # the queue the result goes to; None for the last stage
    build: Callable[[HilumSettings], Core]
    add_servicer: Callable[[Core, Forward[Out], grpc.Server], None]
    task_input: type[In]
    task: Callable[[Core], Callable[[In], Out]]
    # The messages of a result that the next stage takes: by default, the result itself.
    handoff: Callable[[Out], Sequence[Message]] = lambda result: [result]
    # What the queue task does once its result is handed on (ingestion removes its spool files).
    settle: Callable[[Core, In], None] | None = None
    # How the stage's Celery worker runs its tasks (prefork: one per child process), and how many at once.
    pool: WorkerPool = "prefork"
    concurrency: Callable[[QueueSection], int] = worker_concurrency
    # What keeps the health status of the stage's gRPC service current once its server runs (inference: whether
    # Triton has its models ready); None: SERVING for as long as the server runs.
    watch_health: Callable[[HilumSettings, StartedServer], None] | None = None
    # Calls the stage's gRPC server runs at once (its thread pool).
    server_threads: int = DEFAULT_SERVER_THREADS

    @property
    def grpc_service(self) -> str:
        """The full gRPC service name, reported SERVING by the health service."""
        return self.stage.grpc_service

    def forwarder(self, app: Celery) -> Forward[Out]:
        """A Forward that publishes handoff(result) to the next stage's queue (nothing for the last stage)."""

        def forward(result: Out, /) -> Out:
            if self.next_stage is None:
                return result
            try:
                for message in self.handoff(result):
                    enqueue(app, self.next_stage, message)
            except Exception as exc:  # the result is stored; a redelivery or resubmission forwards again
                raise TransientError(f"could not enqueue {self.next_stage.value}: {type(exc).__name__}") from exc
            return result

        return forward

    def start_server(self, settings: HilumSettings, app: Celery) -> StartedServer:
        """Start the stage's gRPC server (with health, kept current by watch_health; TLS and a health-only port as
        settings.grpc says), its results forwarded through app."""
        core = self.build(settings)
        forward = self.forwarder(app)
        started = create_server(
            settings.grpc.address(settings.grpc.port_for(self.stage.value)),
            [self.grpc_service],
            lambda srv: self.add_servicer(core, forward, srv),
            settings.grpc.max_message_bytes,
            section=settings.grpc,
            max_workers=self.server_threads,
        )
        if self.watch_health is not None:
            self.watch_health(settings, started)
        return started

    def worker_pool(self, settings: HilumSettings) -> tuple[WorkerPool, int]:
        """The Celery pool the stage's worker runs and how many tasks it runs at once.

        A prefork stage that runs one task at a time runs it in a thread of the worker process: a child process would
        double the worker's memory for no parallelism (and the threads pool does not enforce task_time_limit_s).
        """
        concurrency = self.concurrency(settings.queue)
        if self.pool == "prefork" and concurrency == 1:
            return "threads", 1
        return self.pool, concurrency

    def register_task(self, app: Celery, settings: HilumSettings) -> None:
        """Register the stage's Celery task on app: run the core, forward, settle; built once per worker process
        (once for all the threads of a threads pool)."""

        @once
        def handler() -> Callable[[In], None]:
            core = self.build(settings)
            run, forward, settle = self.task(core), self.forwarder(app), self.settle

            def handle(message: In) -> None:
                forward(run(message))
                if settle is not None:
                    settle(core, message)

            return handle

        @once
        def sink() -> DeadLetterSink:
            return dead_letter_sink(open_sessions(settings))

        register_stage_task(
            app, self.stage, self.task_input, handler, sink,
            settings.queue.max_retries, settings.queue.retry_backoff_max_s,
        )
