"""Ingestion's gRPC door: a thin servicer over Ingestion."""

from __future__ import annotations

from typing import Any

from hilum.common.grpc_server import run_stage
from hilum.ingestion.service import Ingestion
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    """SubmitInstances and GetStudyStatus, delegating to the one implementation."""

    def __init__(self, ingestion: Ingestion) -> None:
        self._ingestion = ingestion

    def SubmitInstances(  # noqa: N802 (gRPC method name)
        self, request: ingestion_pb2.SubmitInstancesRequest, context: Any
    ) -> ingestion_pb2.SubmitInstancesResponse:
        return run_stage(context, self._ingestion.submit, request)

    def GetStudyStatus(  # noqa: N802
        self, request: ingestion_pb2.GetStudyStatusRequest, context: Any
    ) -> ingestion_pb2.StudyStatus:
        return self._ingestion.status(request.study_instance_uid)
