"""Priors' wiring: its queue takes findings and hands each comparison to reporting."""

from __future__ import annotations

import pytest

from hilum.common.errors import PermanentError
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.priors.wiring import WIRING, build
from hilum.v1 import messages_pb2


def test_shape_and_handoff() -> None:
    assert WIRING.stage == Stage.PRIORS and WIRING.next_stage == Stage.REPORTING
    assert WIRING.task_input is messages_pb2.StudyFindings and WIRING.settle is None
    comparison = messages_pb2.PriorComparison()
    assert list(WIRING.handoff(comparison)) == [comparison]


def test_build_reads_the_configured_database(tmp_settings: HilumSettings) -> None:
    compare = WIRING.task(build(tmp_settings))
    with pytest.raises(PermanentError, match="not found"):
        compare(messages_pb2.StudyFindings(study=messages_pb2.StudyReference(study_instance_uid="1.2")))
