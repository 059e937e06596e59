"""Which spans that would start a trace are recorded: not a client call outside any trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import SpanKind

from hilum.common.trace_sampling import NoRootClientSpans


def test_a_client_call_outside_any_trace_is_not_recorded_but_one_inside_is() -> None:
    tracer = TracerProvider(sampler=ParentBased(root=NoRootClientSpans())).get_tracer("test")
    with tracer.start_as_current_span("BRPOP", kind=SpanKind.CLIENT) as polling:
        assert not polling.is_recording()
    with tracer.start_as_current_span("run/hilum.reporting.run", kind=SpanKind.CONSUMER) as task:
        assert task.is_recording()
        with tracer.start_as_current_span("SET", kind=SpanKind.CLIENT) as command:
            assert command.is_recording()
    with tracer.start_as_current_span("hand on to inference") as internal:
        assert internal.is_recording()
