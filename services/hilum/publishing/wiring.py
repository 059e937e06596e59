"""Publishing's wiring: built from settings, served over gRPC and the "publishing" queue; the last stage."""

from __future__ import annotations

from hilum.audit.trail import audit_trail
from hilum.common.connections import open_sessions
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.common.stage_wiring import StageWiring
from hilum.publishing.grpc_api import PublishingServicer
from hilum.publishing.senders import configured_senders
from hilum.publishing.service import Publishing
from hilum.v1 import messages_pb2
from hilum.v1.publishing_pb2_grpc import add_PublishingServiceServicer_to_server


def build(settings: HilumSettings) -> Publishing:
    """Publishing over the configured database, with a sender for each configured destination."""
    return Publishing(open_sessions(settings), configured_senders(settings), settings.publish,
                      audit=audit_trail(settings, "publishing"))


# A threads pool: a delivery mostly waits on a FHIR server, an HL7 engine or a PACS, so threads keep several in
# flight in one process. The threads pool does not enforce queue.task_time_limit_s: every destination call is
# bounded by its own timeout_s instead.
WIRING = StageWiring(
    stage=Stage.PUBLISHING, next_stage=None, build=build,
    add_servicer=lambda core, _forward, server: add_PublishingServiceServicer_to_server(
        PublishingServicer(core), server),
    task_input=messages_pb2.DeliveryRequest, task=lambda publishing: publishing.deliver_or_retry,
    pool="threads",
)
