"""Ingestion's wiring: built from settings, served over gRPC and the "ingestion" queue."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from hilum.audit.trail import audit_trail
from hilum.common.connections import open_object_store, open_sessions
from hilum.common.cores import usable_cores
from hilum.common.model_inputs import make_model_inputs
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.common.stage_wiring import StageWiring
from hilum.ingestion.acceptance import AcceptanceRules
from hilum.ingestion.grpc_api import IngestionServicer
from hilum.ingestion.service import Ingestion
from hilum.v1 import messages_pb2
from hilum.v1.ingestion_pb2_grpc import add_IngestionServiceServicer_to_server


def build(settings: HilumSettings) -> Ingestion:
    """Ingestion over the configured database and object store, with the configured acceptance rules."""
    section = settings.ingestion
    return Ingestion(open_sessions(settings), open_object_store(settings), settings.fhir.patient_identifier_system,
                     AcceptanceRules.from_settings(section), timedelta(seconds=section.stability_window_s),
                     audit=audit_trail(settings, "ingestion"),
                     make_inputs=partial(make_model_inputs, devices=bool(settings.triton.devices_model)))


# A Submit call carries a whole image (10 MB and more) and acceptance decodes it (pixels.DECODE_SLOTS, one per core):
# beyond a call per core and two waiting on the database, a call running would only hold its parsed image in memory.
# (gRPC's transport receives the requests of calls waiting for a thread all the same: this bounds the copies, not
# the requests. A limit on a connection's streams would, but a client's first calls on a new connection are then
# refused, UNAVAILABLE, until it has the server's settings.)
SUBMIT_CALLS = usable_cores() + 2

# Ingestion's doors store and mark studies due; the assembler (hilum.ingestion.assembly) hands them on. A threads pool
# for the queue door: a task hashes, decodes and writes an image, and numpy, hashlib and file writes let other threads
# run meanwhile, so a process per task would cost 120 MB of imports for little more speed (queue.task_time_limit_s is
# not enforced in threads; nothing here waits on another system but the database).
WIRING = StageWiring(
    stage=Stage.INGESTION, next_stage=None, build=build,
    add_servicer=lambda core, _forward, server: add_IngestionServiceServicer_to_server(IngestionServicer(core), server),
    task_input=messages_pb2.SpooledInstances, task=lambda ingestion: ingestion.accept_spooled,
    settle=Ingestion.release_spool, server_threads=SUBMIT_CALLS, pool="threads",
)
