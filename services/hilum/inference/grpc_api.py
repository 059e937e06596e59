"""Inference's gRPC door: a thin servicer over Inference (it computes; it does not enqueue priors)."""

from __future__ import annotations

from grpc import ServicerContext

from hilum.common.grpc_server import StageServicer, run_stage
from hilum.inference.service import Inference
from hilum.v1 import inference_pb2_grpc, messages_pb2


class InferenceServicer(StageServicer[Inference], inference_pb2_grpc.InferenceServiceServicer):
    """Infer, delegating to the one implementation."""

    def Infer(self, request: messages_pb2.StudyReference, context: ServicerContext) -> messages_pb2.StudyFindings:
        return run_stage(context, self.core.infer, request)

