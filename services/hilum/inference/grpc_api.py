"""Inference's gRPC door: a thin servicer over Inference (it computes; it does not enqueue priors)."""

from __future__ import annotations

from grpc import Server, ServicerContext

from hilum.common.grpc_server import run_stage
from hilum.common.stage_wiring import Forward
from hilum.inference.service import Inference
from hilum.v1 import inference_pb2_grpc, messages_pb2


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    """Infer, delegating to the one implementation."""

    def __init__(self, inference: Inference) -> None:
        self._inference = inference

    def Infer(self, request: messages_pb2.StudyReference, context: ServicerContext) -> messages_pb2.StudyFindings:
        return run_stage(context, self._inference.infer, request)


def add_to_server(inference: Inference, _forward: Forward[messages_pb2.StudyFindings], server: Server) -> None:
    """Serve InferenceService on server."""
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(inference), server)
