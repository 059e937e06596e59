"""Hilum's FastAPI applications never let FastAPI trace requests by itself (it would record URL paths and query
strings, which carry MRNs). The end-to-end proof is the PHI scan of tests/integration/test_study_traces.py, which
searches the FHIR API by MRN in a traced stack."""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI

from hilum.common.fastapi_app import NATIVE_TELEMETRY_OFF, fastapi_app


def test_native_telemetry_is_off_where_fastapi_has_it() -> None:
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        pytest.skip("this FastAPI has no native telemetry")
    app = fastapi_app(title="x")
    assert all(value is False for value in NATIVE_TELEMETRY_OFF.values())
    assert {key: app._telemetry[key] for key in NATIVE_TELEMETRY_OFF} == NATIVE_TELEMETRY_OFF
    assert app.title == "x"
