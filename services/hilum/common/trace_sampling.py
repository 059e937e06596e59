"""Which spans that would start a trace are recorded: all but a client call made outside any trace (the broker's
polling of Redis, a health check of Triton), each of which would otherwise be a trace of its own."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes


class NoRootClientSpans(Sampler):
    """The sampler of root spans (under ParentBased, a span with a parent follows its parent): every one but a client
    call."""

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
                      attributes: Attributes = None, links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)

    def get_description(self) -> str:
        return "NoRootClientSpans"
