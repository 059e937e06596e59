"""Change per finding between current and prior studies."""

from __future__ import annotations

from hilum.priors.comparison import change_of, compare_findings
from hilum.v1 import messages_pb2

S = messages_pb2.FindingState
C = messages_pb2.Change


def _f(code: str, state: messages_pb2.FindingState.ValueType) -> messages_pb2.Finding:
    return messages_pb2.Finding(code=code, display=code, probability=0.5, threshold=0.5, state=state)


def test_change_table() -> None:
    assert change_of(S.FINDING_STATE_PRESENT, S.FINDING_STATE_ABSENT) == C.CHANGE_NEW
    assert change_of(S.FINDING_STATE_PRESENT, S.FINDING_STATE_PRESENT) == C.CHANGE_UNCHANGED
    assert change_of(S.FINDING_STATE_ABSENT, S.FINDING_STATE_PRESENT) == C.CHANGE_RESOLVED
    assert change_of(S.FINDING_STATE_UNCERTAIN, S.FINDING_STATE_PRESENT) == C.CHANGE_NOT_COMPARED
    assert change_of(S.FINDING_STATE_PRESENT, S.FINDING_STATE_UNCERTAIN) == C.CHANGE_NOT_COMPARED


def test_compare_lists_only_labels_present_on_either_side() -> None:
    current = [_f("effusion", S.FINDING_STATE_PRESENT), _f("edema", S.FINDING_STATE_ABSENT),
               _f("mass", S.FINDING_STATE_ABSENT), _f("nodule", S.FINDING_STATE_PRESENT)]
    prior = [_f("effusion", S.FINDING_STATE_ABSENT), _f("edema", S.FINDING_STATE_PRESENT),
             _f("mass", S.FINDING_STATE_ABSENT)]
    changes = {c.code: c.change for c in compare_findings(current, prior)}
    assert changes == {"effusion": C.CHANGE_NEW, "edema": C.CHANGE_RESOLVED, "nodule": C.CHANGE_NOT_COMPARED}
