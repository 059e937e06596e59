"""Reporting's wiring: its queue takes comparisons and hands each planned delivery to the publishing queue."""

from __future__ import annotations

from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.reporting.service import Reporting
from hilum.reporting.wiring import WIRING, build
from hilum.v1 import messages_pb2


def test_shape_and_handoff() -> None:
    assert WIRING.stage == Stage.REPORTING and WIRING.next_stage == Stage.PUBLISHING
    assert WIRING.task_input is messages_pb2.PriorComparison and WIRING.settle is None
    assert WIRING.grpc_service == "hilum.v1.ReportingService"
    deliveries = [
        messages_pb2.DeliveryRequest(study_instance_uid="1.2", model_version="v", destination=d, event="preliminary")
        for d in ("fhir_server", "mllp")
    ]
    result = messages_pb2.PublishResult(study_instance_uid="1.2", deliveries=deliveries)
    assert list(WIRING.handoff(result)) == deliveries
    assert list(WIRING.handoff(messages_pb2.PublishResult(study_instance_uid="1.2"))) == []


def test_build(tmp_settings: HilumSettings) -> None:
    reporting = build(tmp_settings)
    assert isinstance(reporting, Reporting)
    assert WIRING.task(reporting) == reporting.publish
