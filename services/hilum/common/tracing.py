"""OpenTelemetry traces for every Hilum process: one trace per study, from the door its first instance came through to
its last delivery.

Off unless settings.telemetry.otlp_endpoint (or the standard OTEL_EXPORTER_OTLP_ENDPOINT) names an OTLP/gRPC
collector; then each process exports its spans in batches as service "hilum-<process>" (OTEL_SERVICE_NAME wins).
Off, the OpenTelemetry API's no-op tracer runs: nothing is recorded or sent.

How the one trace holds together: gRPC calls carry it in their metadata and Celery messages in their headers (the
gRPC and Celery instrumentations); between a door and the assembler, which hands the study on later from the
database, it is the study row's trace_context (W3C traceparent, kept with the study's first instance). Redis
commands made for a study are spans of its trace too; a client call outside any trace (the broker's polling, a
health check of Triton) is not recorded, or each would be a trace of its own.

Span attributes are Hilum's own (STUDY_REF, stage, door, destination, counts) and the instrumentations' (RPC method,
Celery task name and queue, the Redis command with its arguments as "?"): never a UID, a patient identifier, a query
string or an exception message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hilum.common.logs import study_ref
from hilum.common.settings import TelemetrySection

TRACER = "hilum"
STUDY_REF = "hilum.study_ref"

_configured = threading.Lock()
_propagator = TraceContextTextMapPropagator()


def otlp_endpoint(section: TelemetrySection) -> str:
    """The collector traces go to; "" when tracing is off."""
    return section.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")


def configure_tracing(process: str, section: TelemetrySection) -> bool:
    """Trace this process when a collector is configured: an SDK tracer provider exporting to it, and the gRPC (server
    and client), Celery and Redis instrumentations. Call before any gRPC server or channel is made. True when tracing
    is on; a second call in one process changes nothing."""
    endpoint = otlp_endpoint(section)
    if not endpoint:
        return False
    # The SDK, exporter and instrumentations are imported only when tracing is on.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    from hilum.common.trace_sampling import NoRootClientSpans

    with _configured:
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            return True
        name = os.environ.get("OTEL_SERVICE_NAME") or f"hilum-{process}"
        provider = TracerProvider(resource=Resource.create({"service.name": name}),
                                  sampler=ParentBased(root=NoRootClientSpans()))
        # The batch processor re-creates its export thread in a forked Celery pool process.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=endpoint, insecure=not endpoint.startswith("https://"))))
        trace.set_tracer_provider(provider)
        for instrumentor in (GrpcInstrumentorServer(), GrpcInstrumentorClient(),  # type: ignore[no-untyped-call]
                             CeleryInstrumentor(), RedisInstrumentor()):  # type: ignore[no-untyped-call]
            instrumentor.instrument()
    return True


@contextmanager
def study_span(name: str, study_instance_uid: str = "", *, parent: str = "", **attributes: str | int) -> Iterator[Span]:
    """A span for work on one study (its STUDY_REF attribute, when the UID is known), child of the current span, or
    of `parent` (a traceparent, e.g. the study row's trace_context) when given."""
    parent_context = _propagator.extract({"traceparent": parent}) if parent else None
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(name, context=parent_context, record_exception=False) as span:
        if study_instance_uid:
            span.set_attribute(STUDY_REF, study_ref(study_instance_uid))
        for key, value in attributes.items():
            span.set_attribute(f"hilum.{key}", value)
        yield span


def mark_study(study_instance_uid: str) -> None:
    """Name the study on the current span (e.g. a Celery task's), when there is one."""
    span = trace.get_current_span()
    if span.is_recording() and study_instance_uid:
        span.set_attribute(STUDY_REF, study_ref(study_instance_uid))


def current_trace_context() -> str:
    """The current span as a W3C traceparent, to be stored and continued later; "" when nothing is traced."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context.get_current())
    return carrier.get("traceparent", "")
