"""Priors' gRPC door: a thin servicer over Priors."""

from __future__ import annotations

from typing import Any

from hilum.common.grpc_server import run_stage
from hilum.priors.service import Priors
from hilum.v1 import messages_pb2, priors_pb2_grpc


class PriorsServicer(priors_pb2_grpc.PriorsServiceServicer):
    """Compare, delegating to the one implementation."""

    def __init__(self, priors: Priors) -> None:
        self._priors = priors

    def Compare(self, request: messages_pb2.StudyFindings, context: Any) -> messages_pb2.PriorComparison:  # noqa: N802
        return run_stage(context, self._priors.compare, request)
