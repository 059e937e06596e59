"""Ingestion's gRPC door: a thin servicer over Ingestion that forwards accepted studies to inference."""

from __future__ import annotations

from grpc import Server, ServicerContext

from hilum.common.grpc_server import run_stage
from hilum.common.stage_wiring import Forward
from hilum.ingestion.service import Ingestion
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    """SubmitInstances and GetStudyStatus, delegating to the one implementation."""

    def __init__(self, ingestion: Ingestion, forward: Forward[ingestion_pb2.SubmitInstancesResponse]) -> None:
        self._ingestion = ingestion
        self._forward = forward

    def SubmitInstances(
        self, request: ingestion_pb2.SubmitInstancesRequest, context: ServicerContext
    ) -> ingestion_pb2.SubmitInstancesResponse:
        return run_stage(context, lambda r: self._forward(self._ingestion.submit(r)), request)

    def GetStudyStatus(
        self, request: ingestion_pb2.GetStudyStatusRequest, context: ServicerContext
    ) -> ingestion_pb2.StudyStatus:
        return self._ingestion.status(request.study_instance_uid)


def add_to_server(
    ingestion: Ingestion, forward: Forward[ingestion_pb2.SubmitInstancesResponse], server: Server
) -> None:
    """Serve IngestionService on server."""
    ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(IngestionServicer(ingestion, forward), server)
