"""Change per finding, and per tube or line, between the current study and the prior: pure functions of the two
studies' findings and devices."""

from __future__ import annotations

import re
from collections.abc import Iterable

from hilum.v1 import messages_pb2

State = messages_pb2.FindingState
Change = messages_pb2.Change
Side = messages_pb2.Laterality

# Heart and mediastinal size read differently on AP and PA projections (an AP film magnifies the heart), so their
# change is not called between the two.
HEART_SIZE_CODES = frozenset({"cardiomegaly", "enlarged_cardiomediastinum"})

# Extent words, as a report writes them, on one scale; a phrase ("mild to moderate") is the mean of its words.
SEVERITY_GRADES = {
    "trace": 1.0, "tiny": 1.0, "minimal": 1.0,
    "small": 2.0, "mild": 2.0, "borderline": 2.0,
    "moderate": 3.0,
    "large": 4.0, "severe": 4.0, "massive": 4.0, "marked": 4.0, "extensive": 4.0,
}
# Extents this far apart or more are a change; closer ones ("mild to moderate" then "moderate") are not.
SEVERITY_STEP = 1.0


def severity_grade(words: str) -> float | None:
    """The extent words' place on SEVERITY_GRADES; None when they hold no extent word."""
    grades = [SEVERITY_GRADES[word] for word in re.findall(r"[a-z]+", words.lower()) if word in SEVERITY_GRADES]
    return sum(grades) / len(grades) if grades else None


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


def change_of_present(current: messages_pb2.Finding, prior: messages_pb2.Finding) -> messages_pb2.FindingChange:
    """The change of a finding present on both studies, from what both state of its side and extent.

    Sides first: the other side only now is a swap (NEW, the prior's side resolved), both sides now of one before
    WORSENED, one side now of both before IMPROVED. Then extent, where both state one: SEVERITY_STEP or more larger
    is WORSENED, smaller IMPROVED. Anything neither states alike is UNCHANGED: present on both, nothing more claimed.
    """
    change = messages_pb2.FindingChange(code=current.code, change=Change.CHANGE_UNCHANGED)
    now, before = current.laterality, prior.laterality
    if Side.LATERALITY_UNSPECIFIED not in (now, before) and now != before:
        change.laterality, change.prior_laterality = now, before
        if now == Side.LATERALITY_BILATERAL:
            change.change = Change.CHANGE_WORSENED
        elif before == Side.LATERALITY_BILATERAL:
            change.change = Change.CHANGE_IMPROVED
        else:
            change.change = Change.CHANGE_NEW
        return change
    extent_now, extent_before = severity_grade(current.severity), severity_grade(prior.severity)
    if extent_now is not None and extent_before is not None:
        if extent_now - extent_before >= SEVERITY_STEP:
            change.change = Change.CHANGE_WORSENED
        elif extent_before - extent_now >= SEVERITY_STEP:
            change.change = Change.CHANGE_IMPROVED
    return change


def compare_findings(
    current: Iterable[messages_pb2.Finding], prior: Iterable[messages_pb2.Finding], *,
    heart_size_comparable: bool = True,
) -> list[messages_pb2.FindingChange]:
    """One change per label that is present or uncertain on either study; labels absent on both are left out.

    heart_size_comparable: False when the two studies are of different projections (AP and PA): the heart-size
    labels are then NOT_COMPARED.
    """
    prior_by_code = {f.code: f for f in prior}
    changes = []
    for finding in current:
        before = prior_by_code.get(finding.code)
        if before is None or (finding.code in HEART_SIZE_CODES and not heart_size_comparable):
            changes.append(messages_pb2.FindingChange(code=finding.code, change=Change.CHANGE_NOT_COMPARED))
            continue
        if finding.state == State.FINDING_STATE_ABSENT and before.state == State.FINDING_STATE_ABSENT:
            continue
        change = change_of(finding.state, before.state)
        if change == Change.CHANGE_UNCHANGED:
            changes.append(change_of_present(finding, before))
        else:
            changes.append(messages_pb2.FindingChange(code=finding.code, change=change))
    return changes


# A tip that moved less than this between two studies is called unchanged in position: each reading carries the
# landmark detection's error and the patient's positioning, and an endotracheal tube's adult window (3-7 cm above the
# carina, device_placement.py) is 40 mm wide.
DEVICE_MOVEMENT_MM = 10.0

DeviceKey = tuple[int, int]  # (DeviceKind value, its number among the study's devices of that kind, from 1)


def numbered_devices(devices: Iterable[messages_pb2.DeviceFinding]) -> dict[DeviceKey, messages_pb2.DeviceFinding]:
    """The study's devices by (kind, n): the n-th of its kind in the order found (reported_devices numbers them
    the same way); devices of no known kind are left out."""
    numbered: dict[DeviceKey, messages_pb2.DeviceFinding] = {}
    seen: dict[int, int] = {}
    for device in devices:
        if device.kind == messages_pb2.DEVICE_KIND_UNSPECIFIED:
            continue
        seen[device.kind] = seen.get(device.kind, 0) + 1
        numbered[(device.kind, seen[device.kind])] = device
    return numbered


def compare_devices(
    current: Iterable[messages_pb2.DeviceFinding], prior: Iterable[messages_pb2.DeviceFinding]
) -> list[messages_pb2.DeviceComparison]:
    """One comparison per tube or line on either study, by kind then number: inserted, removed, moved (by
    DEVICE_MOVEMENT_MM or more along its landmark distance), unchanged, or not compared (on both, the tip not
    measured on both from the same landmark)."""
    now, before = numbered_devices(current), numbered_devices(prior)
    comparisons = []
    for kind, number in sorted(now.keys() | before.keys()):
        device, earlier = now.get((kind, number)), before.get((kind, number))
        comparison = messages_pb2.DeviceComparison(kind=messages_pb2.DeviceKind.ValueType(kind), number=number)
        if earlier is None:
            comparison.change = messages_pb2.DEVICE_CHANGE_INSERTED
        elif device is None:
            comparison.change = messages_pb2.DEVICE_CHANGE_REMOVED
            comparison.landmark = earlier.landmark
        elif (device.HasField("tip_distance_mm") and earlier.HasField("tip_distance_mm")
              and device.landmark.strip() == earlier.landmark.strip()):
            movement = device.tip_distance_mm - earlier.tip_distance_mm
            moved = abs(movement) >= DEVICE_MOVEMENT_MM
            comparison.change = messages_pb2.DEVICE_CHANGE_MOVED if moved else messages_pb2.DEVICE_CHANGE_UNCHANGED
            comparison.tip_movement_mm = movement
            comparison.landmark = device.landmark
        else:
            comparison.change = messages_pb2.DEVICE_CHANGE_NOT_COMPARED
            comparison.landmark = device.landmark
        comparisons.append(comparison)
    return comparisons
