"""Reporting's gRPC door: a thin servicer over Reporting."""

from __future__ import annotations

from grpc import Server, ServicerContext

from hilum.common.grpc_server import run_stage
from hilum.common.stage_wiring import Forward
from hilum.reporting.service import Reporting
from hilum.v1 import messages_pb2, reporting_pb2_grpc


class ReportingServicer(reporting_pb2_grpc.ReportingServiceServicer):
    """Draft and Publish, delegating to the one implementation."""

    def __init__(self, reporting: Reporting) -> None:
        self._reporting = reporting

    def Draft(self, request: messages_pb2.PriorComparison, context: ServicerContext) -> messages_pb2.DraftReport:
        return run_stage(context, self._reporting.draft, request)

    def Publish(self, request: messages_pb2.PriorComparison, context: ServicerContext) -> messages_pb2.PublishResult:
        return run_stage(context, self._reporting.publish, request)


def add_to_server(reporting: Reporting, _forward: Forward[messages_pb2.PublishResult], server: Server) -> None:
    """Serve ReportingService on server (the last stage: there is nothing to forward)."""
    reporting_pb2_grpc.add_ReportingServiceServicer_to_server(ReportingServicer(reporting), server)
