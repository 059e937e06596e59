"""Reporting's wiring: built from settings, served over gRPC and the "reporting" queue; hands deliveries on."""

from __future__ import annotations

from hilum.common.connections import open_redis, open_sessions
from hilum.common.destinations import configured_destinations
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.common.stage_wiring import StageWiring
from hilum.reporting.grpc_api import ReportingServicer
from hilum.reporting.service import Reporting
from hilum.v1 import messages_pb2
from hilum.v1.reporting_pb2_grpc import add_ReportingServiceServicer_to_server


def build(settings: HilumSettings) -> Reporting:
    """Reporting over the configured database, output folder and CDS cache."""
    return Reporting(open_sessions(settings), settings.storage.output_dir, open_redis(settings),
                     settings.fhir, configured_destinations(settings.publish))


# A threads pool: a report costs some 45 ms of Python on a small core, so one process's threads (under one GIL) report
# about twenty studies a second, while each prefork child cost another 120-140 MB, mostly for imports; Kubernetes
# scales reporting out with replicas. The threads pool does not enforce queue.task_time_limit_s: a report waits on
# nothing but the database, Redis and its own output folder.
WIRING = StageWiring(
    stage=Stage.REPORTING, next_stage=Stage.PUBLISHING, build=build,
    add_servicer=lambda core, forward, server: add_ReportingServiceServicer_to_server(
        ReportingServicer(core, forward), server),
    task_input=messages_pb2.PriorComparison, task=lambda reporting: reporting.publish,
    handoff=lambda result: list(result.deliveries), pool="threads",
)
