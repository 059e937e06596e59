"""Ingestion's gRPC door: a thin servicer over Ingestion (studies reach inference through the assembler)."""

from __future__ import annotations

from grpc import ServicerContext

from hilum.common.grpc_server import StageServicer, peer_address, run_stage
from hilum.ingestion.service import Ingestion
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc


class IngestionServicer(StageServicer[Ingestion], ingestion_pb2_grpc.IngestionServiceServicer):
    """SubmitInstances and GetStudyStatus, delegating to the one implementation."""

    def SubmitInstances(
        self, request: ingestion_pb2.SubmitInstancesRequest, context: ServicerContext
    ) -> ingestion_pb2.SubmitInstancesResponse:
        return run_stage(context, lambda submitted: self.core.submit(submitted, peer_address(context.peer())), request)

    def GetStudyStatus(
        self, request: ingestion_pb2.GetStudyStatusRequest, context: ServicerContext
    ) -> ingestion_pb2.StudyStatus:
        return self.core.status(request.study_instance_uid)
