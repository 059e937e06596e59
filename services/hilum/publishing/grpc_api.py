"""Publishing's gRPC door: a thin servicer over Publishing."""

from __future__ import annotations

from grpc import ServicerContext

from hilum.common.grpc_server import StageServicer, run_stage
from hilum.publishing.service import Publishing
from hilum.v1 import messages_pb2, publishing_pb2, publishing_pb2_grpc


class PublishingServicer(StageServicer[Publishing], publishing_pb2_grpc.PublishingServiceServicer):
    """Deliver, delegating to the one implementation."""

    def Deliver(
        self, request: messages_pb2.DeliveryRequest, context: ServicerContext
    ) -> publishing_pb2.DeliveryOutcome:
        return run_stage(context, self.core.deliver, request)
