"""The inference gRPC server's health on a real tritonserver: its service is SERVING while Triton has both models
ready, and NOT_SERVING, with the model and Triton's reason logged, while a model's folder cannot load (cxr_devices
without its weights, on a Triton that keeps serving what did load). The overall service "" serves throughout."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tritonclient.grpc as triton_grpc
from prometheus_client import REGISTRY
from tritonclient.utils import InferenceServerException

from hilum.common.grpc_server import is_serving
from hilum.common.polling import wait_until
from hilum.common.queue import Stage, create_celery_app
from hilum.common.settings import GrpcSection, HilumSettings, StorageSection, TritonSection
from hilum.inference.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.runtime.triton import TritonServer
from tests.integration.conftest import copy_model_repository

pytestmark = pytest.mark.integration

INFERENCE = Stage.INFERENCE.grpc_service
LOGGER = "hilum.inference.model_health"


def model_ready(model: str) -> float | None:
    return REGISTRY.get_sample_value("hilum_model_ready", {"model": model})


@contextmanager
def inference_server(triton: TritonSection, root: Path) -> Iterator[str]:
    """Inference's own gRPC server (as `hilum serve inference` starts it) over triton; yields its address."""
    settings = HilumSettings(storage=StorageSection(data_dir=root / "data", output_dir=root / "out"), triton=triton,
                             grpc=GrpcSection(inference_port=free_port()))
    started = WIRING.start_server(settings, create_celery_app(settings))
    try:
        yield settings.grpc.address(settings.grpc.inference_port)
    finally:
        started.stop(None)


@pytest.fixture
def devices_without_weights(tmp_path: Path, demo_model_repository: Path) -> Path:
    """A model repository with the demo cxr_findings and a cxr_devices folder without its exported weights."""
    repository = copy_model_repository(tmp_path / "model_repository", ("cxr_devices",))
    shutil.copytree(demo_model_repository / "cxr_findings", repository / "cxr_findings")
    return repository


def _answers(url: str) -> bool:
    client = triton_grpc.InferenceServerClient(url)
    try:
        return bool(client.is_server_live(client_timeout=1.0))
    except InferenceServerException:
        return False
    finally:
        client.close()


def test_with_both_models_ready_the_inference_service_serves(triton_server: TritonSection, tmp_path: Path) -> None:
    with inference_server(triton_server, tmp_path) as address:
        wait_until(lambda: is_serving(address, INFERENCE), timeout_s=60, interval_s=0.1, what="inference to serve")
        assert is_serving(address)
    assert (model_ready("cxr_findings"), model_ready("cxr_devices")) == (1.0, 1.0)


def test_a_model_that_cannot_load_makes_the_inference_service_not_serving_and_the_reason_is_logged(
    devices_without_weights: Path, triton_section_for: Callable[[Path], TritonSection], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    section = triton_section_for(devices_without_weights)
    triton = TritonServer(section, tmp_path / "triton", tmp_path / "triton.log", exit_on_error=False)
    triton.start()

    def still_running() -> None:
        if not triton.running:
            raise AssertionError(f"tritonserver stopped:\n{triton.log_tail()}")

    try:
        # Triton answers once it has loaded what it could: cxr_devices has failed by then.
        wait_until(lambda: _answers(section.grpc_url), timeout_s=120, interval_s=0.2, what="Triton to answer",
                   on_poll=still_running)
        with caplog.at_level(logging.INFO, logger=LOGGER), inference_server(section, tmp_path) as address:
            wait_until(lambda: "model cxr_devices is not ready" in caplog.text, timeout_s=60, interval_s=0.1,
                       what="inference to find cxr_devices not ready")
            assert not is_serving(address, INFERENCE)
            assert is_serving(address)  # the process serves: a liveness probe must not restart it
    finally:
        triton.stop()
    (logged,) = [record.getMessage() for record in caplog.records
                 if record.name == LOGGER and record.levelno == logging.WARNING]
    assert logged.startswith(f"{INFERENCE} not serving: model cxr_devices is not ready in Triton: UNAVAILABLE: ")
    assert "hilum models demo" in logged  # Triton's reason: the model's own message about its missing weights
    assert (model_ready("cxr_findings"), model_ready("cxr_devices")) == (1.0, 0.0)
