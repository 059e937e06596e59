"""Priors' gRPC door: a thin servicer over Priors (it computes; it does not enqueue reporting)."""

from __future__ import annotations

from grpc import Server, ServicerContext

from hilum.common.grpc_server import run_stage
from hilum.common.stage_wiring import Forward
from hilum.priors.service import Priors
from hilum.v1 import messages_pb2, priors_pb2_grpc


class PriorsServicer(priors_pb2_grpc.PriorsServiceServicer):
    """Compare, delegating to the one implementation."""

    def __init__(self, priors: Priors) -> None:
        self._priors = priors

    def Compare(self, request: messages_pb2.StudyFindings, context: ServicerContext) -> messages_pb2.PriorComparison:
        return run_stage(context, self._priors.compare, request)


def add_to_server(priors: Priors, _forward: Forward[messages_pb2.PriorComparison], server: Server) -> None:
    """Serve PriorsService on server."""
    priors_pb2_grpc.add_PriorsServiceServicer_to_server(PriorsServicer(priors), server)
