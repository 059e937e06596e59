"""Ingestion's wiring: built from settings, served over gRPC and the "ingestion" queue, hands studies to inference."""

from __future__ import annotations

from collections.abc import Sequence

from grpc import Server

from hilum.common.connections import open_object_store, open_sessions
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.common.stage_wiring import Forward, StageWiring
from hilum.ingestion.grpc_api import IngestionServicer
from hilum.ingestion.service import Ingestion
from hilum.v1 import ingestion_pb2, messages_pb2
from hilum.v1.ingestion_pb2_grpc import add_IngestionServiceServicer_to_server


def build(settings: HilumSettings) -> Ingestion:
    """Ingestion over the configured database and object store."""
    return Ingestion(open_sessions(settings), open_object_store(settings), settings.fhir.patient_identifier_system)


def ready_studies(response: ingestion_pb2.SubmitInstancesResponse) -> Sequence[messages_pb2.StudyReference]:
    """The studies this call made ready for inference."""
    return list(response.ready_studies)


def add_servicer(ingestion: Ingestion, forward: Forward[ingestion_pb2.SubmitInstancesResponse], server: Server) -> None:
    """Serve IngestionService on server; SubmitInstances forwards the studies it made ready."""
    add_IngestionServiceServicer_to_server(IngestionServicer(ingestion, forward), server)


WIRING = StageWiring(
    stage=Stage.INGESTION, next_stage=Stage.INFERENCE,
    build=build, add_servicer=add_servicer,
    task_input=messages_pb2.SpooledInstances, task=lambda ingestion: ingestion.accept_spooled,
    handoff=ready_studies, settle=Ingestion.release_spool,
)
