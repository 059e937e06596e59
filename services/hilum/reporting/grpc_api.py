"""Reporting's gRPC door: a thin servicer over Reporting."""

from __future__ import annotations

from typing import Any

from hilum.common.grpc_server import run_stage
from hilum.reporting.service import Reporting
from hilum.v1 import messages_pb2, reporting_pb2_grpc


class ReportingServicer(reporting_pb2_grpc.ReportingServiceServicer):
    """Draft and Publish, delegating to the one implementation."""

    def __init__(self, reporting: Reporting) -> None:
        self._reporting = reporting

    def Draft(self, request: messages_pb2.PriorComparison, context: Any) -> messages_pb2.DraftReport:  # noqa: N802
        return run_stage(context, self._reporting.draft, request)

    def Publish(self, request: messages_pb2.PriorComparison, context: Any) -> messages_pb2.PublishResult:  # noqa: N802
        return run_stage(context, self._reporting.publish, request)
