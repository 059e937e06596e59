"""Change per finding, and per tube or line, between current and prior studies."""

from __future__ import annotations

import pytest

from hilum.priors.comparison import DEVICE_MOVEMENT_MM, change_of, compare_devices, compare_findings, severity_grade
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


def _device(kind: messages_pb2.DeviceKind.ValueType, tip_mm: float | None = None,
            landmark: str = "carina") -> messages_pb2.DeviceFinding:
    device = messages_pb2.DeviceFinding(kind=kind, probability=0.9, landmark=landmark)
    if tip_mm is not None:
        device.tip_distance_mm = tip_mm
    return device


ETT, NG, CVC = messages_pb2.DEVICE_KIND_ETT, messages_pb2.DEVICE_KIND_NG_TUBE, messages_pb2.DEVICE_KIND_CVC
D = messages_pb2


def _calls(changes: list[messages_pb2.DeviceComparison]) -> list[tuple[int, int, int, float | None]]:
    return [(c.kind, c.number, c.change, round(c.tip_movement_mm, 1) if c.HasField("tip_movement_mm") else None)
            for c in changes]


def test_a_device_is_inserted_removed_moved_or_unchanged_by_kind_and_number() -> None:
    current = [_device(ETT, 35.0), _device(CVC, 10.0, "cavoatrial junction"), _device(CVC, 30.0, "cavoatrial junction")]
    prior = [_device(ETT, 50.0), _device(NG, 80.0, "gastroesophageal junction"),
             _device(CVC, 14.0, "cavoatrial junction")]
    assert _calls(compare_devices(current, prior)) == [
        (ETT, 1, D.DEVICE_CHANGE_MOVED, -15.0),       # advanced 15 mm towards the carina
        (NG, 1, D.DEVICE_CHANGE_REMOVED, None),
        (CVC, 1, D.DEVICE_CHANGE_UNCHANGED, -4.0),    # within DEVICE_MOVEMENT_MM
        (CVC, 2, D.DEVICE_CHANGE_INSERTED, None),     # the second line is new
    ]


@pytest.mark.parametrize(("now_mm", "before_mm", "change"), [
    (50.0, 40.0, D.DEVICE_CHANGE_MOVED),        # exactly the threshold: moved (withdrawn)
    (49.9, 40.0, D.DEVICE_CHANGE_UNCHANGED),    # just under it
    (30.0, 40.0, D.DEVICE_CHANGE_MOVED),        # advanced
])
def test_movement_is_called_at_and_across_the_threshold(now_mm: float, before_mm: float,
                                                        change: messages_pb2.DeviceChange.ValueType) -> None:
    assert DEVICE_MOVEMENT_MM == 10.0
    (call,) = compare_devices([_device(ETT, now_mm)], [_device(ETT, before_mm)])
    assert call.change == change and call.tip_movement_mm == pytest.approx(now_mm - before_mm, abs=1e-4)


def test_a_tip_not_measured_on_both_from_the_same_landmark_is_not_compared() -> None:
    for current, prior in (([_device(ETT)], [_device(ETT, 40.0)]),
                           ([_device(CVC, 10.0, "cavoatrial junction")], [_device(CVC, 10.0, "carina")])):
        (call,) = compare_devices(current, prior)
        assert call.change == D.DEVICE_CHANGE_NOT_COMPARED and not call.HasField("tip_movement_mm")
    assert compare_devices([_device(D.DEVICE_KIND_UNSPECIFIED, 1.0)], []) == []  # no known kind: nothing said


def test_extent_words_are_graded_and_a_phrase_is_their_mean() -> None:
    assert [severity_grade(words) for words in ("trace", "Small", "mild to moderate", "moderate", "massive")] == [
        1.0, 2.0, 2.5, 3.0, 4.0]
    assert severity_grade("") is None and severity_grade("new") is None
