"""Process entry points: `hilum serve STAGE... [assembler] [dicom]` (gRPC servers, and the companions that may share
their process), `hilum serve assembler` and `hilum worker STAGE...` (a Celery worker).

Each stage's wiring (hilum.<stage>.wiring) says how its core is built and exposed; this module only
picks the wiring by name. Wirings are imported when asked for, so a process loads only its own
stage's dependencies (the inference worker needs Triton's client, reporting needs FHIR models).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

from celery import Celery
from celery.signals import worker_process_init, worker_ready
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.grpc_server import StartedServer, serve_until_signalled
from hilum.common.heartbeat import install_worker_heartbeat, stop_event
from hilum.common.logs import configure_logging
from hilum.common.metrics import mark_dead_worker_processes, queue_length_collector, serve_metrics
from hilum.common.queue import create_celery_app
from hilum.common.settings import HilumSettings
from hilum.common.stage_wiring import StageDoors, WorkerPool
from hilum.common.startup_objects import freeze_startup_objects
from hilum.common.tracing import configure_tracing

# The five pipeline stages in the order a study passes them; each runs a gRPC server and a Celery worker.
STAGE_NAMES: tuple[str, ...] = ("ingestion", "inference", "priors", "reporting", "publishing")
# What may run in threads of a process serving stages' gRPC doors, instead of a process of its own.
COMPANIONS: tuple[str, ...] = ("assembler", "dicom")

log = logging.getLogger(__name__)


def stage_doors(name: str) -> StageDoors:
    """The wiring of the stage called name (one of STAGE_NAMES)."""
    if name == "ingestion":
        from hilum.ingestion.wiring import WIRING as ingestion

        return ingestion
    if name == "inference":
        from hilum.inference.wiring import WIRING as inference

        return inference
    if name == "priors":
        from hilum.priors.wiring import WIRING as priors

        return priors
    if name == "reporting":
        from hilum.reporting.wiring import WIRING as reporting

        return reporting
    if name == "publishing":
        from hilum.publishing.wiring import WIRING as publishing

        return publishing
    raise ValueError(f"no stage called {name!r}; stages: {', '.join(STAGE_NAMES)}")


def serve(names: Sequence[str], settings: HilumSettings) -> None:
    """Run the gRPC servers (with health) of the stages called names, each on its own port, in this one process until
    SIGTERM; metrics on settings.metrics. names may add COMPANIONS: the assembler's loop and the DICOM SCP then run in
    threads of the same process. The embedded stack serves all five stages and both companions from one process;
    Kubernetes runs one stage per pod, the only way a health-only port (settings.grpc.health_port) can be given."""
    if len(names) != len(set(names)):
        raise ValueError(f"a name given twice: {' '.join(names)}")
    stages = [name for name in names if name not in COMPANIONS]
    if not stages:
        raise ValueError(f"{' and '.join(names)} share a process with gRPC stages only; serve them alone otherwise")
    if len(stages) > 1 and settings.grpc.health_port:
        raise ValueError("HILUM_GRPC__HEALTH_PORT is for one stage per process: serve one stage, or leave it at 0")
    doors = [stage_doors(name) for name in stages]  # an unknown name fails before anything starts
    process = f"{stages[0]}-grpc" if len(names) == 1 else "grpc"
    configure_logging(process)
    configure_tracing(process, settings.telemetry)  # before the servers: their calls are traced from the first
    serve_metrics(settings.metrics)
    app = create_celery_app(settings, name="hilum-grpc")
    servers: list[StartedServer] = []
    stoppers: list[Callable[[], None]] = []
    try:
        for door in doors:
            servers.append(door.start_server(settings, app))
        if "dicom" in names:
            stoppers.append(_start_dicom(settings))
        if "assembler" in names:
            stoppers.append(_start_assembler(settings, app))
    except BaseException:
        for stop in stoppers:
            stop()
        for server in servers:
            server.stop(None)
        raise
    freeze_startup_objects()
    serve_until_signalled(servers, first=stoppers)


def _start_dicom(settings: HilumSettings) -> Callable[[], None]:
    """Start the DICOM SCP (over its own Ingestion core) in this process; returns what stops it."""
    from hilum.ingestion import dimse_scp
    from hilum.ingestion.wiring import build

    scp = dimse_scp.start_scp(settings.dicom, build(settings))
    return lambda: dimse_scp.stop_scp(scp)


def _start_assembler(settings: HilumSettings, app: Celery) -> Callable[[], None]:
    """Run the assembler's loop in a thread of this process, handing studies on through app; returns what stops it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_assembler, args=(settings, app, stop), name="assembler", daemon=True)
    thread.start()

    def stopped() -> None:
        stop.set()
        thread.join()

    return stopped


def serve_assembler(settings: HilumSettings) -> None:
    """`hilum serve assembler`: the assembler alone, until SIGTERM; each wait between polls beats
    settings.health.heartbeat_file (also while the database is down: the loop is alive, only waiting)."""
    configure_logging("assembler")
    configure_tracing("assembler", settings.telemetry)
    serve_metrics(settings.metrics)
    stop = stop_event(settings.health)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_assembler(settings, create_celery_app(settings, name="hilum-assembler"), stop)


def run_assembler(settings: HilumSettings, app: Celery, stop: threading.Event) -> None:
    """Hand complete studies to inference through app every settings.ingestion.assembly_poll_s until stop is set, and
    studies and deliveries stalled for settings.queue.stalled_after_s again (their queue message was lost).

    A failure to reach the database or the broker is logged and tried again at the next poll. The audit rounds run
    beside it in a thread of their own: the HTTP doors' audit spool moved into the database and, with
    settings.audit.syslog_url, the audit trail sent to its repository.
    """
    from hilum.common.connections import open_sessions
    from hilum.common.queue import Stage, enqueue
    from hilum.ingestion.assembly import Assembler
    from hilum.publishing.admin import resend_stalled

    stalled_after = timedelta(seconds=settings.queue.stalled_after_s)
    sessions = open_sessions(settings)
    _start_audit_rounds(settings, sessions, stop)
    assembler = Assembler(sessions, lambda reference: enqueue(app, Stage.INFERENCE, reference),
                          stalled_after=stalled_after)
    # Stalled studies are looked for a few times per stalled_after (at most once a minute): a cheap indexed query.
    stall_check_s = min(60.0, settings.queue.stalled_after_s / 4)
    next_stall_check = time.monotonic()
    while not stop.wait(settings.ingestion.assembly_poll_s):
        try:
            if time.monotonic() >= next_stall_check:
                next_stall_check = time.monotonic() + stall_check_s
                assembler.resume_stalled()
                resend_stalled(sessions, lambda request: enqueue(app, Stage.PUBLISHING, request),
                               datetime.now(UTC) - stalled_after)
            assembler.hand_on_due()
        except Exception as exc:  # the database or the broker is down: the studies stay due
            log.warning("assembler will try again", extra={"error_type": type(exc).__name__})


def _start_audit_rounds(settings: HilumSettings, sessions: sessionmaker[Session], stop: threading.Event) -> None:
    """Start the audit thread (hilum.audit.rounds) until stop is set."""
    from hilum.audit.export import exporter_from_settings
    from hilum.audit.rounds import audit_round, run_audit_rounds
    from hilum.audit.trail import audit_trail
    from hilum.common.connections import open_redis

    exporter = exporter_from_settings(settings.audit, sessions) if settings.audit.syslog_url else None
    one_round = partial(audit_round, open_redis(settings, timeout_s=10.0), sessions, audit_trail(settings, "audit"),
                        exporter)
    threading.Thread(target=run_audit_rounds, args=(one_round, stop), name="audit", daemon=True).start()


def worker_app(names: Sequence[str], settings: HilumSettings) -> Celery:
    """The Celery app of a worker of the stages called names, with their stage tasks registered and its heartbeat
    (settings.health) installed."""
    app = create_celery_app(settings, name=f"hilum-{'-'.join(names)}")
    for name in names:
        stage_doors(name).register_task(app, settings)
    install_worker_heartbeat(app, settings.health)
    # Once the worker (or a prefork pool's child) is ready, what it made starting stays out of full collections.
    worker_ready.connect(_freeze_when_ready, dispatch_uid=_FREEZE_WHEN_READY)
    worker_process_init.connect(_freeze_when_ready, dispatch_uid=_FREEZE_WHEN_READY)
    return app


_FREEZE_WHEN_READY = "hilum-freeze-startup-objects"


def _freeze_when_ready(**_: object) -> None:
    """Celery's worker_ready and worker_process_init receiver: startup_objects.freeze_startup_objects."""
    freeze_startup_objects()


def worker_pools(names: Sequence[str], settings: HilumSettings) -> list[tuple[WorkerPool, int]]:
    """The pool and concurrency of each stage of a worker of the stages called names; raises ValueError when they
    cannot share one worker (a name twice, or several stages of which one runs processes)."""
    if not names or len(names) != len(set(names)):
        raise ValueError(f"a worker needs its stages, each named once: {' '.join(names)}")
    pools = [stage_doors(name).worker_pool(settings) for name in names]
    if len(names) > 1 and any(pool != "threads" for pool, _ in pools):
        raise ValueError(f"several stages share a worker only when each runs a threads pool: {' '.join(names)}")
    return pools


def work(names: Sequence[str], settings: HilumSettings) -> None:
    """Run a Celery worker on the queues of the stages called names, with the pool their wirings ask for, until
    SIGTERM (warm shutdown); metrics, with the length of its queues, on settings.metrics, served by the main process
    for the pool processes too (multiprocess mode; a threads pool has no pool processes, its tasks count in the main
    one). Several stages share a worker only when each runs a threads pool (the embedded stack's priors and
    publishing, which wait on the database and on destinations): their threads add up."""
    pools = worker_pools(names, settings)
    doors = [stage_doors(name) for name in names]
    label = "-".join(names)
    configure_logging(f"{label}-worker")
    configure_tracing(f"{label}-worker", settings.telemetry)
    app = worker_app(names, settings)
    queues = [door.stage.value for door in doors]
    mark_dead_worker_processes()
    serve_metrics(settings.metrics, [queue_length_collector(settings.redis.url, queues)])
    app.worker_main([
        "worker", "--queues", ",".join(queues), "--hostname", f"{label}@%h",
        "--pool", pools[0][0], "--concurrency", str(sum(concurrency for _, concurrency in pools)),
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ])
