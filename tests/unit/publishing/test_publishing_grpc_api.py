"""Publishing's gRPC door over a real server: Deliver answers the outcome; an unplanned delivery is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.grpc_server import create_server
from hilum.common.settings import PublishSection
from hilum.publishing.service import PublishedReport, Publishing
from hilum.publishing.wiring import WIRING
from hilum.runtime.ports import free_port
from hilum.v1 import messages_pb2, publishing_pb2, publishing_pb2_grpc


def _receipt(report: PublishedReport, event: DeliveryEvent) -> str:
    return f"stored {event.value}"


@pytest.fixture
def stub(sqlite_sessions: sessionmaker[Session]) -> Iterator[publishing_pb2_grpc.PublishingServiceStub]:
    publishing = Publishing(sqlite_sessions, {Destination.PACS: _receipt}, PublishSection())
    address = f"127.0.0.1:{free_port()}"
    server = create_server(address, [WIRING.grpc_service],
                           lambda srv: WIRING.add_servicer(publishing, lambda result: result, srv),
                           max_message_bytes=4 * 1024 * 1024)
    with grpc.insecure_channel(address) as channel:
        yield publishing_pb2_grpc.PublishingServiceStub(channel)
    server.stop(None)


def test_deliver_answers_the_outcome(
    stub: publishing_pb2_grpc.PublishingServiceStub, publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("5.1", (Destination.PACS,)).deliveries
    outcome = stub.Deliver(request, timeout=10)
    assert outcome.status == publishing_pb2.DELIVERY_STATUS_DELIVERED and outcome.receipt == "stored preliminary"
    assert outcome.request == request


def test_an_unplanned_delivery_is_failed_precondition(stub: publishing_pb2_grpc.PublishingServiceStub) -> None:
    request = messages_pb2.DeliveryRequest(study_instance_uid="5.404", model_version="v", destination="pacs",
                                           event="preliminary")
    with pytest.raises(grpc.RpcError) as failed:
        stub.Deliver(request, timeout=10)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
