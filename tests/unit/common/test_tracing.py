"""Tracing: off by default at no cost; on, spans reach a real OTLP/gRPC collector with the study's reference, and a
stored trace context is continued in the same trace (in a child process: a tracer provider is once per process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from hilum.common.logs import study_ref
from hilum.common.polling import wait_until
from hilum.common.settings import TelemetrySection
from hilum.common.tracing import STUDY_REF, configure_tracing, current_trace_context, otlp_endpoint, study_span
from tests.helpers import REPO_ROOT
from tests.otlp_receiver import OtlpReceiver

TRACED = textwrap.dedent("""
    import json, sys
    from opentelemetry import trace
    from hilum.common.settings import TelemetrySection
    from hilum.common.tracing import configure_tracing, current_trace_context, study_span

    section = TelemetrySection(otlp_endpoint=sys.argv[1])
    first, again = configure_tracing("test", section), configure_tracing("test", section)
    with study_span("ingest instance", "1.2.3", door="grpc"):
        stored = current_trace_context()
    with study_span("hand on to inference", "1.2.3", parent=stored):
        pass
    trace.get_tracer_provider().force_flush()
    print(json.dumps({"configured": [first, again], "stored": stored}))
""")


def test_off_unless_a_collector_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert otlp_endpoint(TelemetrySection()) == ""
    assert configure_tracing("test", TelemetrySection()) is False
    with study_span("ingest instance", "1.2.3") as span:
        assert not span.is_recording() and current_trace_context() == ""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    assert otlp_endpoint(TelemetrySection()) == "http://collector:4317"
    assert otlp_endpoint(TelemetrySection(otlp_endpoint="http://mine:4317")) == "http://mine:4317"


def test_spans_reach_the_collector_and_a_stored_context_continues_the_trace() -> None:
    with OtlpReceiver() as collector:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "services")}
        env.pop("OTEL_SERVICE_NAME", None)
        done = subprocess.run([sys.executable, "-c", TRACED, collector.endpoint], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        told = json.loads(done.stdout)
        assert told["configured"] == [True, True]  # a second call changes nothing
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", told["stored"])
        wait_until(lambda: len(collector.spans()) >= 2, timeout_s=10, interval_s=0.1, what="two spans")
        spans = {s.span.name: s for s in collector.spans()}
    door, handed = spans["ingest instance"], spans["hand on to inference"]
    assert door.service == handed.service == "hilum-test"
    assert door.attributes == {STUDY_REF: study_ref("1.2.3"), "hilum.door": "grpc"}
    assert handed.span.trace_id == door.span.trace_id and handed.span.parent_span_id == door.span.span_id
    assert told["stored"].split("-")[1] == door.span.trace_id.hex()

