"""Change per finding between the current study and the prior: a pure function of the two finding lists."""

from __future__ import annotations

from collections.abc import Iterable

from hilum.v1 import messages_pb2

State = messages_pb2.FindingState
Change = messages_pb2.Change


def change_of(current: messages_pb2.FindingState.ValueType,
              prior: messages_pb2.FindingState.ValueType) -> messages_pb2.Change.ValueType:
    """NEW / UNCHANGED / RESOLVED for definite states; NOT_COMPARED when either side is uncertain."""
    if State.FINDING_STATE_UNCERTAIN in (current, prior):
        return Change.CHANGE_NOT_COMPARED
    now_present = current == State.FINDING_STATE_PRESENT
    was_present = prior == State.FINDING_STATE_PRESENT
    if now_present and not was_present:
        return Change.CHANGE_NEW
    if was_present and not now_present:
        return Change.CHANGE_RESOLVED
    return Change.CHANGE_UNCHANGED


def compare_findings(
    current: Iterable[messages_pb2.Finding], prior: Iterable[messages_pb2.Finding]
) -> list[messages_pb2.FindingChange]:
    """One change per label that is present or uncertain on either study; labels absent on both are left out."""
    prior_by_code = {f.code: f.state for f in prior}
    changes = []
    for finding in current:
        before = prior_by_code.get(finding.code)
        if before is None:
            changes.append(messages_pb2.FindingChange(code=finding.code, change=Change.CHANGE_NOT_COMPARED))
            continue
        if finding.state == State.FINDING_STATE_ABSENT and before == State.FINDING_STATE_ABSENT:
            continue
        changes.append(messages_pb2.FindingChange(code=finding.code, change=change_of(finding.state, before)))
    return changes
