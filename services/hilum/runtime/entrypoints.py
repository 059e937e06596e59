"""Process entry points: `hilum serve SERVICE` (gRPC server) and `hilum worker SERVICE` (Celery worker).

This is the one place that knows how each service's core object is built from settings; its
gRPC servicer and its Celery task are both handed that same object. Builders import their stage
when called, so a process loads only its own stage's dependencies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from celery import Celery
from google.protobuf.message import Message

from hilum.common.connections import open_object_store, open_redis, open_sessions
from hilum.common.dead_letters import dead_letter_sink
from hilum.common.errors import TransientError
from hilum.common.grpc_server import create_server, serve_until_signalled
from hilum.common.logs import configure_logging
from hilum.common.queue import Stage, create_celery_app, enqueue, register_stage_task
from hilum.common.settings import HilumSettings
from hilum.v1 import (
    inference_pb2_grpc,
    ingestion_pb2_grpc,
    messages_pb2,
    priors_pb2_grpc,
    reporting_pb2_grpc,
)


def build_ingestion(settings: HilumSettings, app: Celery) -> Any:
    from hilum.ingestion.service import Ingestion

    def enqueue_inference(reference: messages_pb2.StudyReference) -> None:
        try:
            enqueue(app, Stage.INFERENCE, reference)
        except Exception as exc:  # the instances are stored; a resubmission enqueues again
            raise TransientError(f"could not enqueue inference: {type(exc).__name__}") from exc

    return Ingestion(open_sessions(settings), open_object_store(settings), enqueue_inference,
                     settings.fhir.patient_identifier_system)


def build_inference(settings: HilumSettings, app: Celery) -> Any:
    from hilum.inference.engine import FindingsEngine
    from hilum.inference.labels import load_label_map
    from hilum.inference.service import Inference

    triton = settings.triton
    labels = load_label_map(triton.model_repository / triton.findings_model)
    engine = FindingsEngine(triton.grpc_url, triton.findings_model, labels, triton.request_timeout_s)
    return Inference(open_sessions(settings), open_object_store(settings), engine)


def build_priors(settings: HilumSettings, app: Celery) -> Any:
    from hilum.priors.service import Priors

    return Priors(open_sessions(settings), timedelta(seconds=settings.queue.prior_wait_s))


def build_reporting(settings: HilumSettings, app: Celery) -> Any:
    from hilum.reporting.service import Reporting

    return Reporting(
        open_sessions(settings), settings.storage.output_dir, open_redis(settings),
        settings.fhir.patient_identifier_system,
    )


@dataclass(frozen=True)
class ServiceSpec:
    """How one service is built and exposed through its two doors."""

    stage: Stage
    port: Callable[[HilumSettings], int]
    grpc_name: str
    build: Callable[[HilumSettings, Celery], Any]
    add_servicer: Callable[[Any, grpc.Server], None]
    input_type: type[Message]
    task_core: Callable[[Any], Callable[[Any], Message]]
    next_stage: Stage | None


def _add_ingestion(core: Any, server: grpc.Server) -> None:
    from hilum.ingestion.grpc_api import IngestionServicer

    ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(IngestionServicer(core), server)


def _add_inference(core: Any, server: grpc.Server) -> None:
    from hilum.inference.grpc_api import InferenceServicer

    inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(core), server)


def _add_priors(core: Any, server: grpc.Server) -> None:
    from hilum.priors.grpc_api import PriorsServicer

    priors_pb2_grpc.add_PriorsServiceServicer_to_server(PriorsServicer(core), server)


def _add_reporting(core: Any, server: grpc.Server) -> None:
    from hilum.reporting.grpc_api import ReportingServicer

    reporting_pb2_grpc.add_ReportingServiceServicer_to_server(ReportingServicer(core), server)


# The four pipeline stages in the order a study passes them; each runs a gRPC server and a Celery worker.
STAGE_NAMES: tuple[str, ...] = ("ingestion", "inference", "priors", "reporting")

SERVICES: dict[str, ServiceSpec] = {
    "ingestion": ServiceSpec(
        Stage.INGESTION, lambda s: s.grpc.ingestion_port, "hilum.v1.IngestionService", build_ingestion,
        _add_ingestion, messages_pb2.SpooledInstances, lambda core: core.accept_spooled, None,
    ),
    "inference": ServiceSpec(
        Stage.INFERENCE, lambda s: s.grpc.inference_port, "hilum.v1.InferenceService", build_inference,
        _add_inference, messages_pb2.StudyReference, lambda core: core.infer, Stage.PRIORS,
    ),
    "priors": ServiceSpec(
        Stage.PRIORS, lambda s: s.grpc.priors_port, "hilum.v1.PriorsService", build_priors,
        _add_priors, messages_pb2.StudyFindings, lambda core: core.compare, Stage.REPORTING,
    ),
    "reporting": ServiceSpec(
        Stage.REPORTING, lambda s: s.grpc.reporting_port, "hilum.v1.ReportingService", build_reporting,
        _add_reporting, messages_pb2.PriorComparison, lambda core: core.publish, None,
    ),
}


def serve(name: str, settings: HilumSettings) -> None:
    """Run the service's gRPC server (with health) until SIGTERM."""
    configure_logging(f"{name}-grpc")
    spec = SERVICES[name]
    core = spec.build(settings, create_celery_app(settings))
    server = create_server(
        settings.grpc.address(spec.port(settings)),
        [spec.grpc_name],
        lambda srv: spec.add_servicer(core, srv),
        settings.grpc.max_message_bytes,
    )
    serve_until_signalled(server)


def worker_app(name: str, settings: HilumSettings) -> Celery:
    """The Celery app of the service's worker, with its one stage task registered."""
    spec = SERVICES[name]
    app = create_celery_app(settings, name=f"hilum-{name}")

    @functools.cache
    def core() -> Callable[[Any], Message]:
        return spec.task_core(spec.build(settings, app))

    @functools.cache
    def sink() -> Any:
        return dead_letter_sink(open_sessions(settings))

    register_stage_task(
        app, spec.stage, spec.input_type, core, spec.next_stage, sink,
        settings.queue.max_retries, settings.queue.retry_backoff_max_s,
    )
    return app


def work(name: str, settings: HilumSettings) -> None:
    """Run the service's Celery worker on its own queue until SIGTERM (warm shutdown)."""
    configure_logging(f"{name}-worker")
    app = worker_app(name, settings)
    app.worker_main([
        "worker", "--queues", SERVICES[name].stage.value, "--hostname", f"{name}@%h",
        "--concurrency", str(settings.queue.worker_concurrency), "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ])
