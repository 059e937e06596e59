"""Ingestion's gRPC door: a thin servicer over Ingestion that forwards accepted studies to inference."""

from __future__ import annotations

from grpc import ServicerContext

from hilum.common.grpc_server import StageServicer, run_stage
from hilum.common.stage_wiring import Forward
from hilum.ingestion.service import Ingestion
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc


class IngestionServicer(StageServicer[Ingestion], ingestion_pb2_grpc.IngestionServiceServicer):
    """SubmitInstances (which forwards the studies it made ready) and GetStudyStatus."""

    def __init__(self, ingestion: Ingestion, forward: Forward[ingestion_pb2.SubmitInstancesResponse]) -> None:
        super().__init__(ingestion)
        self._forward = forward

    def SubmitInstances(
        self, request: ingestion_pb2.SubmitInstancesRequest, context: ServicerContext
    ) -> ingestion_pb2.SubmitInstancesResponse:
        return run_stage(context, lambda r: self._forward(self.core.submit(r)), request)

    def GetStudyStatus(
        self, request: ingestion_pb2.GetStudyStatusRequest, context: ServicerContext
    ) -> ingestion_pb2.StudyStatus:
        return self.core.status(request.study_instance_uid)

