"""Priors' gRPC door: a thin servicer over Priors (it computes; it does not enqueue reporting)."""

from __future__ import annotations

from grpc import ServicerContext

from hilum.common.grpc_server import StageServicer, run_stage
from hilum.priors.service import Priors
from hilum.v1 import messages_pb2, priors_pb2_grpc


class PriorsServicer(StageServicer[Priors], priors_pb2_grpc.PriorsServiceServicer):
    """Compare, delegating to the one implementation."""

    def Compare(self, request: messages_pb2.StudyFindings, context: ServicerContext) -> messages_pb2.PriorComparison:
        return run_stage(context, self.core.compare, request)

