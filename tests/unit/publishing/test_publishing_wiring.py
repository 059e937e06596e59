"""Publishing's wiring: the last stage; its queue takes delivery requests and retries by the delivery row."""

from __future__ import annotations

from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.publishing.service import Publishing
from hilum.publishing.wiring import WIRING, build
from hilum.v1 import messages_pb2


def test_shape() -> None:
    assert WIRING.stage == Stage.PUBLISHING and WIRING.next_stage is None
    assert WIRING.task_input is messages_pb2.DeliveryRequest and WIRING.settle is None
    assert WIRING.grpc_service == "hilum.v1.PublishingService"


def test_build(tmp_settings: HilumSettings) -> None:
    publishing = build(tmp_settings)
    assert isinstance(publishing, Publishing)
    assert WIRING.task(publishing) == publishing.deliver_or_retry
