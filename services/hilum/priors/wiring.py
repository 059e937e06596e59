"""Priors' wiring: built from settings, served over gRPC and the "priors" queue, hands comparisons to reporting."""

from __future__ import annotations

from datetime import timedelta

from hilum.audit.trail import audit_trail
from hilum.common.connections import open_sessions
from hilum.common.queue import Stage, create_celery_app
from hilum.common.settings import HilumSettings
from hilum.common.stage_wiring import StageWiring
from hilum.priors.grpc_api import PriorsServicer
from hilum.priors.service import Priors
from hilum.priors.sources import configured_sources
from hilum.v1 import messages_pb2
from hilum.v1.priors_pb2_grpc import add_PriorsServiceServicer_to_server


def build(settings: HilumSettings) -> Priors:
    """Priors over the configured database and prior sources (priors.sources, in order), waiting up to
    queue.prior_wait_s for a prior in flight in Hilum's store or fetched from a PACS (whose images go to ingestion's
    queue, sent with an app of this process's own)."""
    sessions = open_sessions(settings)
    return Priors(sessions, timedelta(seconds=settings.queue.prior_wait_s),
                  sources=configured_sources(settings, sessions, create_celery_app(settings, "hilum-priors")),
                  audit=audit_trail(settings, "priors"))


# A threads pool: a comparison is a few database reads and writes, so a process per task would spend more memory
# than it saves CPU; the threads pool does not enforce queue.task_time_limit_s, and nothing here waits long.
WIRING = StageWiring(
    stage=Stage.PRIORS, next_stage=Stage.REPORTING, build=build,
    add_servicer=lambda core, _forward, server: add_PriorsServiceServicer_to_server(PriorsServicer(core), server),
    task_input=messages_pb2.StudyFindings, task=lambda priors: priors.compare,
    pool="threads",
)
