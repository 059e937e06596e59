"""Whether Triton can serve inference's models, reported where probes and operators look: the inference gRPC health
service and the hilum_model_ready gauge.

The inference service name (hilum.v1.InferenceService) is SERVING only while Triton answers, reports itself ready
and has every model inference uses ready (the findings model, and the devices model unless it is ""). The overall
service "" is left alone: it says the process serves (a liveness probe's question), so a model that fails to load
makes the pod unready, never restarts it, and other stages served by the same process are not affected.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc
import tritonclient.grpc as triton_grpc
from grpc_health.v1 import health, health_pb2
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from hilum.common.grpc_server import StartedServer
from hilum.common.metrics import MODEL_READY
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings, TritonSection

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 5.0
# Each call to Triton gives up after this long: a check ends well within the interval even when Triton hangs.
CHECK_TIMEOUT_S = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Readiness:
    """Triton's answer for inference: each model's readiness (model name → ready) and, while inference cannot
    serve, why: one line per cause, naming the model and Triton's reason. No cause: serving."""

    models: Mapping[str, bool]
    problems: tuple[str, ...] = ()

    @property
    def serving(self) -> bool:
        """Whether inference can serve: nothing stands in its way."""
        return not self.problems


def required_models(section: TritonSection) -> tuple[str, ...]:
    """The models inference asks Triton for: the findings model and, unless it is "", the devices model."""
    return (section.findings_model, section.devices_model) if section.devices_model else (section.findings_model,)


def load_reason(index: service_pb2.RepositoryIndexResponse | None, model: str) -> str:
    """Why Triton has not loaded model, from its repository index: the model's state and the first line of Triton's
    reason (a python backend adds a traceback, which stays in Triton's log)."""
    for entry in [] if index is None else index.models:
        if entry.name == model and entry.state != "READY":
            reason = entry.reason.strip().splitlines()
            return f"{entry.state}: {reason[0]}" if reason else str(entry.state or "not loaded")
    return "not in Triton's model repository index"


def triton_readiness(url: str, models: tuple[str, ...], timeout_s: float = CHECK_TIMEOUT_S) -> Readiness:
    """Ask the Triton server at url ("host:port", gRPC) whether it and each of models is ready, each call within
    timeout_s; a server that does not answer has no model ready."""
    client = triton_grpc.InferenceServerClient(url)
    try:
        server_ready = bool(client.is_server_ready(client_timeout=timeout_s))
        ready = {model: bool(client.is_model_ready(model, client_timeout=timeout_s)) for model in models}
        index = None if all(ready.values()) else client.get_model_repository_index(client_timeout=timeout_s)
    except InferenceServerException as exc:
        # The status code, not its changing details, so that the same outage reads the same at every check.
        return Readiness(dict.fromkeys(models, False), (f"Triton at {url} does not answer ({exc.status()})",))
    finally:
        client.close()
    problems = [f"model {model} is not ready in Triton: {load_reason(index, model)}"
                for model, is_ready in ready.items() if not is_ready]
    if not server_ready and not problems:
        problems.append(f"Triton at {url} reports itself not ready")
    return Readiness(ready, tuple(problems))


class ModelHealth:
    """Keeps service's status on a health servicer, and hilum_model_ready, in step with what probe says: SERVING
    while every model is ready, NOT_SERVING otherwise. A change (of status, or of why it does not serve) is logged
    once, not at each check: Triton that does not answer and later answers without a model logs both causes."""

    def __init__(self, probe: Callable[[], Readiness], health_servicer: health.HealthServicer, service: str) -> None:
        self._probe = probe
        self._health = health_servicer
        self._service = service
        self._problems: tuple[str, ...] | None = None  # what the last check found; None: not asked yet

    def check(self) -> bool:
        """Ask probe once and report its answer; returns whether the service is SERVING now."""
        try:
            readiness = self._probe()
        except Exception as exc:  # a checker thread that died would leave its last answer standing
            readiness = Readiness({}, (f"the readiness check failed ({type(exc).__name__})",))
        for model, ready in readiness.models.items():
            MODEL_READY.labels(model=model).set(1 if ready else 0)
        serving = readiness.serving
        self._health.set(self._service, SERVING if serving else NOT_SERVING)
        if readiness.problems != self._problems:
            if serving:
                log.info("%s serving: Triton has %s ready", self._service, ", ".join(readiness.models))
            else:
                log.warning("%s not serving: %s", self._service, "; ".join(readiness.problems))
        self._problems = readiness.problems
        return serving

    def watch(self, server: grpc.Server, interval_s: float = CHECK_INTERVAL_S) -> threading.Thread:
        """Report NOT_SERVING until the first answer, then check at once and every interval_s from a daemon thread
        that ends when server stops."""
        self._health.set(self._service, NOT_SERVING)

        def run() -> None:
            self.check()
            while server.wait_for_termination(interval_s):  # True: the wait timed out, the server still runs
                self.check()

        thread = threading.Thread(target=run, name="model-health", daemon=True)
        thread.start()
        return thread


def watch_models(settings: HilumSettings, started: StartedServer) -> None:
    """Report the inference gRPC service SERVING on started's health only while the Triton server of settings has
    every model inference uses ready."""
    triton = settings.triton
    models = required_models(triton)
    checker = ModelHealth(lambda: triton_readiness(triton.grpc_url, models), started.health,
                          Stage.INFERENCE.grpc_service)
    checker.watch(started.server)
