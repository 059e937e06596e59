"""Reporting's wiring: the last stage, its queue takes comparisons and forwards nothing."""

from __future__ import annotations

from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.reporting.service import Reporting
from hilum.reporting.wiring import WIRING, build
from hilum.v1 import messages_pb2


def test_shape_and_handoff() -> None:
    assert WIRING.stage == Stage.REPORTING and WIRING.next_stage is None
    assert WIRING.task_input is messages_pb2.PriorComparison and WIRING.settle is None
    assert WIRING.grpc_service == "hilum.v1.ReportingService"


def test_build(tmp_settings: HilumSettings) -> None:
    reporting = build(tmp_settings)
    assert isinstance(reporting, Reporting)
    assert WIRING.task(reporting) == reporting.publish
