"""Process entry points: `hilum serve STAGE` (gRPC server) and `hilum worker STAGE` (Celery worker).

Each stage's wiring (hilum.<stage>.wiring) says how its core is built and exposed; this module only
picks the wiring by name. Wirings are imported when asked for, so a process loads only its own
stage's dependencies (the inference worker needs Triton's client, reporting needs FHIR models).
"""

from __future__ import annotations

import logging
import signal
import threading

from celery import Celery

from hilum.common.logs import configure_logging
from hilum.common.queue import create_celery_app
from hilum.common.settings import HilumSettings
from hilum.common.stage_wiring import StageDoors

# The five pipeline stages in the order a study passes them; each runs a gRPC server and a Celery worker.
STAGE_NAMES: tuple[str, ...] = ("ingestion", "inference", "priors", "reporting", "publishing")

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


def serve(name: str, settings: HilumSettings) -> None:
    """Run the stage's gRPC server (with health) until SIGTERM."""
    configure_logging(f"{name}-grpc")
    stage_doors(name).serve(settings)


def serve_assembler(settings: HilumSettings) -> None:
    """Hand complete studies to inference every settings.ingestion.assembly_poll_s until SIGTERM.

    A failure to reach the database or the broker is logged and tried again at the next poll.
    """
    from hilum.common.connections import open_sessions
    from hilum.common.queue import Stage, enqueue
    from hilum.ingestion.assembly import Assembler

    configure_logging("assembler")
    app = create_celery_app(settings, name="hilum-assembler")
    assembler = Assembler(open_sessions(settings), lambda reference: enqueue(app, Stage.INFERENCE, reference))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(settings.ingestion.assembly_poll_s):
        try:
            assembler.hand_on_due()
        except Exception as exc:  # the database or the broker is down: the studies stay due
            log.warning("assembler will try again", extra={"error_type": type(exc).__name__})


def worker_app(name: str, settings: HilumSettings) -> Celery:
    """The Celery app of the stage's worker, with its one stage task registered."""
    app = create_celery_app(settings, name=f"hilum-{name}")
    stage_doors(name).register_task(app, settings)
    return app


def work(name: str, settings: HilumSettings) -> None:
    """Run the stage's Celery worker on its own queue until SIGTERM (warm shutdown)."""
    configure_logging(f"{name}-worker")
    app = worker_app(name, settings)
    app.worker_main([
        "worker", "--queues", stage_doors(name).stage.value, "--hostname", f"{name}@%h",
        "--concurrency", str(settings.queue.worker_concurrency), "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ])
