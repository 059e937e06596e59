"""Inference's gRPC door: a thin servicer over Inference."""

from __future__ import annotations

from typing import Any

from hilum.common.grpc_server import run_stage
from hilum.inference.service import Inference
from hilum.v1 import inference_pb2_grpc, messages_pb2


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    """Infer, delegating to the one implementation."""

    def __init__(self, inference: Inference) -> None:
        self._inference = inference

    def Infer(self, request: messages_pb2.StudyReference, context: Any) -> messages_pb2.StudyFindings:  # noqa: N802
        return run_stage(context, self._inference.infer, request)
