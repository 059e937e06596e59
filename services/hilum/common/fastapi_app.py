"""FastAPI applications as Hilum builds them: with FastAPI's own OpenTelemetry instrumentation off.

Recent FastAPI releases trace and meter every request by themselves once a tracer provider is set, with the URL path
and query string (which carry MRNs and UIDs) as span attributes, and log exception messages. Hilum's
RequestLatencyMiddleware (hilum.cds.app) traces and times each request by its route template instead.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI

NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def fastapi_app(**settings: Any) -> FastAPI:
    """FastAPI(**settings), its native telemetry off where the installed FastAPI has it."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        settings["telemetry"] = NATIVE_TELEMETRY_OFF
    return FastAPI(**settings)
