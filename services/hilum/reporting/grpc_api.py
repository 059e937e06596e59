"""Reporting's gRPC door: a thin servicer over Reporting."""

from __future__ import annotations

from grpc import ServicerContext

from hilum.common.grpc_server import StageServicer, run_stage
from hilum.common.stage_wiring import Forward
from hilum.reporting.service import Reporting
from hilum.v1 import messages_pb2, reporting_pb2_grpc


class ReportingServicer(StageServicer[Reporting], reporting_pb2_grpc.ReportingServiceServicer):
    """Draft and Publish, delegating to the one implementation; a publish hands its deliveries on, as the
    queue task does, so a result published over gRPC reaches its destinations too.
    """

    def __init__(self, core: Reporting, forward: Forward[messages_pb2.PublishResult]) -> None:
        super().__init__(core)
        self._forward = forward

    def Draft(self, request: messages_pb2.PriorComparison, context: ServicerContext) -> messages_pb2.DraftReport:
        return run_stage(context, self.core.draft, request)

    def Publish(self, request: messages_pb2.PriorComparison, context: ServicerContext) -> messages_pb2.PublishResult:
        return run_stage(context, lambda comparison: self._forward(self.core.publish(comparison)), request)

