"""The inference service's health follows Triton's models: its state changes, each logged once with its causes; the
overall service is left alone; the checker thread ends with its server; an absent Triton has no model ready."""

from __future__ import annotations

import logging
import threading

import pytest
from grpc_health.v1 import health, health_pb2
from prometheus_client import REGISTRY
from tritonclient.grpc import service_pb2

from hilum.common.grpc_server import create_server, is_serving
from hilum.common.polling import wait_until
from hilum.common.settings import TritonSection
from hilum.inference.model_health import (
    NOT_SERVING,
    SERVING,
    ModelHealth,
    Readiness,
    load_reason,
    required_models,
    triton_readiness,
)
from hilum.runtime.ports import free_port

SERVICE = "hilum.v1.InferenceService"
READY = Readiness({"cxr_findings": True, "cxr_devices": True})
DEVICES_FAILED = Readiness({"cxr_findings": True, "cxr_devices": False},
                           ("model cxr_devices is not ready in Triton: UNAVAILABLE: weights missing",))
UNREACHABLE = Readiness({"cxr_findings": False, "cxr_devices": False},
                        ("Triton at 127.0.0.1:1 does not answer (StatusCode.UNAVAILABLE)",))


def status(servicer: health.HealthServicer, service: str) -> int:
    """What the health servicer answers for service (a set one: no call context is needed)."""
    response = servicer.Check(health_pb2.HealthCheckRequest(service=service), None)
    return int(response.status)


def model_ready(model: str) -> float | None:
    return REGISTRY.get_sample_value("hilum_model_ready", {"model": model})


@pytest.fixture
def servicer() -> health.HealthServicer:
    """A health servicer with the overall and inference services SERVING, as a started server has them."""
    servicer = health.HealthServicer()
    for name in ("", SERVICE):
        servicer.set(name, SERVING)
    return servicer


def test_the_models_are_findings_and_devices_unless_devices_is_empty() -> None:
    assert required_models(TritonSection()) == ("cxr_findings", "cxr_devices")
    assert required_models(TritonSection(devices_model="")) == ("cxr_findings",)


def test_each_change_is_reported_and_logged_once_with_its_cause(
    servicer: health.HealthServicer, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([UNREACHABLE, DEVICES_FAILED, DEVICES_FAILED, READY, READY, UNREACHABLE, UNREACHABLE])
    checker = ModelHealth(lambda: next(answers), servicer, SERVICE)
    seen = []
    with caplog.at_level(logging.INFO, logger="hilum.inference.model_health"):
        for _ in range(7):
            serving = checker.check()
            seen.append((serving, status(servicer, SERVICE), status(servicer, ""),
                         model_ready("cxr_findings"), model_ready("cxr_devices")))
    assert seen == [
        (False, NOT_SERVING, SERVING, 0.0, 0.0),
        (False, NOT_SERVING, SERVING, 1.0, 0.0),
        (False, NOT_SERVING, SERVING, 1.0, 0.0),
        (True, SERVING, SERVING, 1.0, 1.0),
        (True, SERVING, SERVING, 1.0, 1.0),
        (False, NOT_SERVING, SERVING, 0.0, 0.0),
        (False, NOT_SERVING, SERVING, 0.0, 0.0),
    ]
    unreachable = f"{SERVICE} not serving: Triton at 127.0.0.1:1 does not answer (StatusCode.UNAVAILABLE)"
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (logging.WARNING, unreachable),
        (logging.WARNING,
         f"{SERVICE} not serving: model cxr_devices is not ready in Triton: UNAVAILABLE: weights missing"),
        (logging.INFO, f"{SERVICE} serving: Triton has cxr_findings, cxr_devices ready"),
        (logging.WARNING, unreachable),
    ]


def test_a_check_that_fails_reports_not_serving(servicer: health.HealthServicer,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)  # whatever level an earlier test (a Celery test worker) left the root at

    def broken() -> Readiness:
        raise RuntimeError("a bug")

    checker = ModelHealth(broken, servicer, SERVICE)
    assert not checker.check()
    assert status(servicer, SERVICE) == NOT_SERVING
    assert "the readiness check failed (RuntimeError)" in caplog.text


def test_watch_is_not_serving_until_the_first_answer_while_the_process_serves_all_along() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = create_server(address, [SERVICE], lambda _server: None, max_message_bytes=1024 * 1024)
    answer = threading.Event()

    def probe() -> Readiness:
        answer.wait(timeout=60)
        return READY

    try:
        ModelHealth(probe, started.health, SERVICE).watch(started.server, interval_s=600.0)
        assert not is_serving(address, SERVICE)  # the probe has not answered yet
        assert is_serving(address)
        answer.set()
        wait_until(lambda: is_serving(address, SERVICE), timeout_s=10, interval_s=0.05, what="the first answer")
    finally:
        answer.set()
        started.stop(None)


def test_the_watching_thread_ends_when_its_server_stops_not_after_the_interval() -> None:
    started = create_server(f"127.0.0.1:{free_port()}", [SERVICE], lambda _server: None, max_message_bytes=1024)
    thread = ModelHealth(lambda: READY, started.health, SERVICE).watch(started.server, interval_s=600.0)
    started.stop(None)
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_triton_that_does_not_answer_has_no_model_ready() -> None:
    url = f"127.0.0.1:{free_port()}"
    readiness = triton_readiness(url, ("cxr_findings", "cxr_devices"), timeout_s=2.0)
    assert dict(readiness.models) == {"cxr_findings": False, "cxr_devices": False}
    assert not readiness.serving
    assert readiness.problems == (f"Triton at {url} does not answer (StatusCode.UNAVAILABLE)",)


def test_the_load_reason_is_the_state_and_first_line_of_the_index_entry() -> None:
    index = service_pb2.RepositoryIndexResponse(models=[
        service_pb2.RepositoryIndexResponse.ModelIndex(name="cxr_findings", version="1", state="READY"),
        service_pb2.RepositoryIndexResponse.ModelIndex(
            name="cxr_devices", version="1", state="UNAVAILABLE",
            reason="Internal: TritonModelException: model.onnx is missing\n\nAt:\n  model.py(30): initialize\n"),
    ])
    assert load_reason(index, "cxr_devices") == "UNAVAILABLE: Internal: TritonModelException: model.onnx is missing"
    assert load_reason(index, "cxr_other") == "not in Triton's model repository index"
