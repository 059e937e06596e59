"""Inference's wiring: built from settings, served over gRPC (healthy while Triton has its models ready) and the
"inference" queue, hands findings to priors."""

from __future__ import annotations

from hilum.audit.trail import audit_trail
from hilum.common.connections import open_object_store, open_sessions
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings, QueueSection
from hilum.common.stage_wiring import StageWiring
from hilum.inference.engine import FindingsEngine
from hilum.inference.grpc_api import InferenceServicer
from hilum.inference.labels import load_label_map
from hilum.inference.landmarks import load_landmark_map
from hilum.inference.model_health import watch_models
from hilum.inference.service import Inference
from hilum.v1 import messages_pb2
from hilum.v1.inference_pb2_grpc import add_InferenceServiceServicer_to_server


def build(settings: HilumSettings) -> Inference:
    """Inference with a findings engine on the configured Triton server and model. The engine reads the same
    model repository as Triton (same image or volume) for weights.json where the served config lacks provenance.
    """
    triton = settings.triton
    labels = load_label_map(triton.model_repository / triton.findings_model)
    landmarks = load_landmark_map(triton.model_repository / triton.devices_model) if triton.devices_model else ()
    engine = FindingsEngine(
        triton.grpc_url, triton.findings_model, labels, triton.request_timeout_s,
        model_repository=triton.model_repository, devices_model=triton.devices_model, landmarks=landmarks,
    )
    return Inference(open_sessions(settings), open_object_store(settings), engine,
                     audit=audit_trail(settings, "inference"))


def inference_concurrency(queue: QueueSection) -> int:
    """How many studies the inference worker has in flight at once: queue.inference_concurrency threads."""
    return queue.inference_concurrency


# A threads pool: a task mostly waits on Triton, so several in flight at once cost little and reach Triton's
# dynamic batcher together (one Inference, and one gRPC channel, for all threads). acks_late and a prefetch of
# one per thread hold as with prefork. The threads pool does not enforce queue.task_time_limit_s: the Triton
# call is bounded by its own client timeout (settings.triton.request_timeout_s) instead.
WIRING = StageWiring(
    stage=Stage.INFERENCE, next_stage=Stage.PRIORS, build=build,
    add_servicer=lambda core, _forward, server: add_InferenceServiceServicer_to_server(InferenceServicer(core), server),
    task_input=messages_pb2.StudyReference, task=lambda inference: inference.infer,
    handoff=lambda findings: [] if findings.study.comparison_only else [findings],  # a prior fetched rests here
    pool="threads", concurrency=inference_concurrency, watch_health=watch_models,
)
