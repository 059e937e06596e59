"""The findings Hilum reports for one study: decided once here, rendered by every output.

The draft report, the CDS view and the FHIR Observations (and the DiagnosticReport's conclusion codes)
are all built from the one `ReportedFindings` that `reported_findings` computes from the study's
PriorComparison, so they cannot disagree on what was found. The rule:

- every finding PRESENT or UNCERTAIN on the current study is reported;
- a finding that is absent now and was present on the prior (change RESOLVED, as the priors stage
  decides it) is reported as RESOLVED — only when a prior was compared;
- a prior was compared (`compared`) when the comparison has a prior whose findings are known. Change
  since prior is stated only then (a finding the priors stage left out is NOT_COMPARED); otherwise it
  is None, also when the prior is known by its UID alone;
- order: present, then uncertain, then resolved; within each, probability descending (ties keep the
  model's label order).

Findings absent now and not resolved are not reported, but `assessed_codes` keeps every label the
model scored, so that "none reached its threshold" can cite them.

Every tube and line the devices model found is reported as a ReportedDevice with a stable code ("device:ett",
a second one of the same kind "device:ett:2"), in `DeviceType` order; a device of unspecified kind is not.
`DeviceType` is Hilum's one device vocabulary: the proto's DeviceKind, the device codes of the FHIR Observations
and the DICOM SR, and the report all name the same six kinds. A placement call was made when the devices stage
says so (position_called) or its position is satisfactory or malpositioned (payloads from before position_called);
without a call the position is INDETERMINATE and `position_called` False, so no reader mistakes it for a call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from hilum.v1 import messages_pb2


class FindingStatus(StrEnum):
    """What is reported about a finding: present or uncertain now, or resolved since the prior."""

    PRESENT = "present"
    UNCERTAIN = "uncertain"
    RESOLVED = "resolved"


class ChangeSincePrior(StrEnum):
    """A finding's change since the compared prior study."""

    NEW = "new"
    UNCHANGED = "unchanged"
    RESOLVED = "resolved"
    NOT_COMPARED = "not-compared"
    IMPROVED = "improved"
    WORSENED = "worsened"


class Laterality(StrEnum):
    """Side of the chest a finding is on; the findings model gives none, so a current finding is UNSPECIFIED unless a
    comparison states its side."""

    UNSPECIFIED = "unspecified"
    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"


_STATUS = {
    messages_pb2.FINDING_STATE_PRESENT: FindingStatus.PRESENT,
    messages_pb2.FINDING_STATE_UNCERTAIN: FindingStatus.UNCERTAIN,
}

_CHANGE = {
    messages_pb2.CHANGE_NEW: ChangeSincePrior.NEW,
    messages_pb2.CHANGE_UNCHANGED: ChangeSincePrior.UNCHANGED,
    messages_pb2.CHANGE_RESOLVED: ChangeSincePrior.RESOLVED,
    messages_pb2.CHANGE_NOT_COMPARED: ChangeSincePrior.NOT_COMPARED,
    messages_pb2.CHANGE_IMPROVED: ChangeSincePrior.IMPROVED,
    messages_pb2.CHANGE_WORSENED: ChangeSincePrior.WORSENED,
}

# The proto's Laterality as Laterality and back (an unspecified side has no entry).
LATERALITY_OF_SIDE: dict[messages_pb2.Laterality.ValueType, Laterality] = {
    messages_pb2.LATERALITY_LEFT: Laterality.LEFT,
    messages_pb2.LATERALITY_RIGHT: Laterality.RIGHT,
    messages_pb2.LATERALITY_BILATERAL: Laterality.BILATERAL,
}
SIDE_OF_LATERALITY = {laterality: side for side, laterality in LATERALITY_OF_SIDE.items()}

_ORDER = (FindingStatus.PRESENT, FindingStatus.UNCERTAIN, FindingStatus.RESOLVED)


class DeviceType(StrEnum):
    """A kind of tube or line, named as it appears in device codes ("device:<type>"); report order."""

    ETT = "ett"
    NG_TUBE = "ng_tube"
    CVC = "cvc"
    PICC = "picc"
    CHEST_TUBE = "chest_tube"
    PACEMAKER = "pacemaker"


class DevicePosition(StrEnum):
    """Where a device's tip lies, as the devices model judged it."""

    SATISFACTORY = "satisfactory"
    MALPOSITIONED = "malpositioned"
    INDETERMINATE = "indeterminate"


class DeviceChangeSincePrior(StrEnum):
    """How a tube or line differs from the compared prior (the proto's DeviceChange)."""

    INSERTED = "inserted"
    REMOVED = "removed"
    MOVED = "moved"
    UNCHANGED = "unchanged"
    NOT_COMPARED = "not-compared"


_DEVICE_CHANGE = {
    messages_pb2.DEVICE_CHANGE_INSERTED: DeviceChangeSincePrior.INSERTED,
    messages_pb2.DEVICE_CHANGE_REMOVED: DeviceChangeSincePrior.REMOVED,
    messages_pb2.DEVICE_CHANGE_MOVED: DeviceChangeSincePrior.MOVED,
    messages_pb2.DEVICE_CHANGE_UNCHANGED: DeviceChangeSincePrior.UNCHANGED,
    messages_pb2.DEVICE_CHANGE_NOT_COMPARED: DeviceChangeSincePrior.NOT_COMPARED,
}


# The proto's DeviceKind as DeviceType and back: the same six kinds.
DEVICE_TYPE_OF_KIND: dict[messages_pb2.DeviceKind.ValueType, DeviceType] = {
    messages_pb2.DEVICE_KIND_ETT: DeviceType.ETT,
    messages_pb2.DEVICE_KIND_NG_TUBE: DeviceType.NG_TUBE,
    messages_pb2.DEVICE_KIND_CVC: DeviceType.CVC,
    messages_pb2.DEVICE_KIND_PICC: DeviceType.PICC,
    messages_pb2.DEVICE_KIND_CHEST_TUBE: DeviceType.CHEST_TUBE,
    messages_pb2.DEVICE_KIND_PACEMAKER: DeviceType.PACEMAKER,
}
DEVICE_KIND_OF_TYPE = {device_type: kind for kind, device_type in DEVICE_TYPE_OF_KIND.items()}

_DEVICE_POSITION = {
    messages_pb2.DEVICE_POSITION_SATISFACTORY: DevicePosition.SATISFACTORY,
    messages_pb2.DEVICE_POSITION_MALPOSITIONED: DevicePosition.MALPOSITIONED,
}

DEVICE_DISPLAY = {
    DeviceType.ETT: "Endotracheal tube",
    DeviceType.NG_TUBE: "Nasogastric tube",
    DeviceType.CVC: "Central venous catheter",
    DeviceType.PICC: "Peripherally inserted central catheter",
    DeviceType.CHEST_TUBE: "Chest tube",
    DeviceType.PACEMAKER: "Pacemaker lead",
}

# The landmark a tip distance is measured from (positive above it) when the finding names none; None: the kind
# has no landmark distance.
DEVICE_LANDMARK: dict[DeviceType, str | None] = {
    DeviceType.ETT: "carina",
    DeviceType.NG_TUBE: "gastroesophageal junction",
    DeviceType.CVC: "cavoatrial junction",
    DeviceType.PICC: "cavoatrial junction",
    DeviceType.CHEST_TUBE: None,
    DeviceType.PACEMAKER: None,
}


def device_code(kind: DeviceType) -> str:
    """The kind's code in every output ("device:ett"): report sentences, FHIR Observations, DICOM SR."""
    return f"device:{kind.value}"


_ORDINAL = {2: "Second", 3: "Third", 4: "Fourth", 5: "Fifth"}


@dataclass(frozen=True)
class ModelProvenance:
    """The algorithm that produced a finding: model name, version, and whether it runs demo weights."""

    name: str
    version: str
    demo_weights: bool
    weights_sha256: str = ""  # of the served model file; "" in results recorded before it was kept
    label_set: str = ""  # the label map the outputs were read with ("18 labels, sha256 ...")

    @classmethod
    def of(cls, info: messages_pb2.ModelInfo) -> ModelProvenance:
        """The provenance recorded in a ModelInfo message."""
        return cls(name=info.name, version=info.version, demo_weights=info.demo_weights,
                   weights_sha256=info.weights_sha256, label_set=info.label_set)

    def as_info(self) -> messages_pb2.ModelInfo:
        """A fresh ModelInfo message with the same provenance."""
        return messages_pb2.ModelInfo(name=self.name, version=self.version, demo_weights=self.demo_weights,
                                      weights_sha256=self.weights_sha256, label_set=self.label_set)


@dataclass(frozen=True)
class PriorReference:
    """The prior study the comparison names: its UID and study date (None when missing or malformed), and whether
    its findings were read from its radiologist's report rather than from the model on its image."""

    study_instance_uid: str
    study_date: date | None
    from_report: bool = False


@dataclass(frozen=True)
class ReportedFinding:
    """One reported finding.

    probability, threshold: the current study's model output and operating threshold, in [0, 1]
    (for a RESOLVED finding, the current, sub-threshold probability). snomed_code: "" where the label
    has no SNOMED CT concept. change: None when no prior was compared. prior_laterality: the side the prior stated,
    where the comparison found the sides changed (a swap, a side added or cleared); None otherwise.
    """

    code: str
    display: str
    snomed_code: str
    status: FindingStatus
    probability: float
    threshold: float
    laterality: Laterality
    change: ChangeSincePrior | None
    model: ModelProvenance
    prior_laterality: Laterality | None = None

    @property
    def label(self) -> str:
        """The display name (the code when it has none), with the side when one is known: "Effusion (left)"."""
        name = self.display or self.code
        return name if self.laterality == Laterality.UNSPECIFIED else f"{name} ({self.laterality.value})"


@dataclass(frozen=True)
class ReportedDevice:
    """One reported tube or line.

    code: "device:<type>", "device:<type>:<n>" for the n-th of the same type. tip_distance_mm: tip to `landmark`
    in millimetres, positive above it, negative below; None when not measured or when there is no landmark.
    probability: the devices model's output in [0, 1]. position_called: False when no placement call was made
    (position is then INDETERMINATE). measurement: how the distance was measured, or why it was not;
    position_reason: why this call, or why none ("" when the devices stage gave none). change: how it differs from
    the compared prior (None: no prior's devices were compared); tip_movement_mm: current minus prior tip distance
    above the landmark (positive: withdrawn), when measured on both.
    """

    code: str
    kind: DeviceType
    display: str
    position: DevicePosition
    tip_distance_mm: float | None
    probability: float
    landmark: str | None = None
    measurement: str = ""
    position_reason: str = ""
    position_called: bool = True
    change: DeviceChangeSincePrior | None = None
    tip_movement_mm: float | None = None


@dataclass(frozen=True)
class ReportedFindings:
    """The reported findings of one study, in report order, with what they were compared against.

    compared: a prior with known findings was compared, so change since prior is stated.
    assessed_codes: every label the model scored on the current study, reported or not.
    devices: the tubes and lines found on the current study, in DeviceType order.
    devices_model: the tube-and-line model that found them; None when none ran (or for results recorded before it
    was kept). removed_devices: the compared prior's tubes and lines that are gone now (change REMOVED).
    """

    study_instance_uid: str
    model: ModelProvenance
    prior: PriorReference | None
    compared: bool
    findings: tuple[ReportedFinding, ...]
    assessed_codes: tuple[str, ...]
    devices: tuple[ReportedDevice, ...] = ()
    devices_model: ModelProvenance | None = None
    removed_devices: tuple[ReportedDevice, ...] = ()

    def with_status(self, status: FindingStatus) -> tuple[ReportedFinding, ...]:
        """The findings with `status`, most probable first."""
        return tuple(f for f in self.findings if f.status == status)

    @property
    def present(self) -> tuple[ReportedFinding, ...]:
        """Findings present now."""
        return self.with_status(FindingStatus.PRESENT)

    @property
    def uncertain(self) -> tuple[ReportedFinding, ...]:
        """Findings possible now (close to, but below, their threshold)."""
        return self.with_status(FindingStatus.UNCERTAIN)

    @property
    def resolved(self) -> tuple[ReportedFinding, ...]:
        """Findings present on the compared prior and absent now."""
        return self.with_status(FindingStatus.RESOLVED)

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes of the reported findings, in report order."""
        return tuple(f.code for f in self.findings)

    @property
    def absent_codes(self) -> tuple[str, ...]:
        """The assessed labels that are not reported: absent now and not resolved."""
        reported = set(self.codes)
        return tuple(code for code in self.assessed_codes if code not in reported)


def study_date_of(dicom_date: str) -> date | None:
    """A DICOM DA value (YYYYMMDD) as a date; None when empty or malformed."""
    try:
        return datetime.strptime(dicom_date, "%Y%m%d").date() if len(dicom_date) == 8 else None
    except ValueError:
        return None


def _status(finding: messages_pb2.Finding, change: ChangeSincePrior | None) -> FindingStatus | None:
    """The finding's reported status, or None when it is not reported."""
    if finding.state == messages_pb2.FINDING_STATE_ABSENT and change == ChangeSincePrior.RESOLVED:
        return FindingStatus.RESOLVED
    return _STATUS.get(finding.state)


def reported_devices(devices: Iterable[messages_pb2.DeviceFinding]) -> tuple[ReportedDevice, ...]:
    """The devices as reported: numbered per type in the order found, then ordered by type.

    The landmark is the finding's, else the type's usual one (DEVICE_LANDMARK); a distance without a landmark
    is dropped, since it would say nothing.
    """
    seen: dict[DeviceType, int] = {}
    reported: list[ReportedDevice] = []
    for device in devices:
        kind = DEVICE_TYPE_OF_KIND.get(device.kind)
        if kind is None:
            continue
        number = seen[kind] = seen.get(kind, 0) + 1
        landmark = device.landmark.strip() or DEVICE_LANDMARK[kind]
        has_distance = device.HasField("tip_distance_mm") and landmark is not None
        position = _DEVICE_POSITION.get(device.position)
        called = device.position_called or position is not None
        reported.append(ReportedDevice(
            code=device_code(kind) + (f":{number}" if number > 1 else ""),
            kind=kind,
            display=_device_display(kind, number),
            position=position if position is not None else DevicePosition.INDETERMINATE,
            # float32 on the wire: 0.1 mm is far below what the geometry resolves
            tip_distance_mm=round(device.tip_distance_mm, 1) if has_distance else None,
            probability=device.probability,
            landmark=landmark,
            measurement=device.measurement.strip(),
            position_reason=device.position_reason.strip(),
            position_called=called,
        ))
    order = list(DeviceType)
    return tuple(sorted(reported, key=lambda d: order.index(d.kind)))


def _device_display(kind: DeviceType, number: int) -> str:
    """"Endotracheal tube" for the first of a type, "Second endotracheal tube" (or "... tube 9") after it."""
    display = DEVICE_DISPLAY[kind]
    if number == 1:
        return display
    return f"{_ORDINAL[number]} {display.lower()}" if number in _ORDINAL else f"{display} {number}"


def reported_findings(comparison: messages_pb2.PriorComparison) -> ReportedFindings:
    """What gets reported for the comparison's current study (the rule is in the module docstring)."""
    current = comparison.current
    model = ModelProvenance.of(current.model)
    has_prior = comparison.HasField("prior")
    compared = has_prior and len(comparison.prior.findings) > 0
    changes = {c.code: c for c in comparison.changes} if compared else {}
    reported: list[ReportedFinding] = []
    for finding in current.findings:
        stated = changes.get(finding.code)
        change = None if not compared else (
            _CHANGE.get(stated.change, ChangeSincePrior.NOT_COMPARED) if stated else ChangeSincePrior.NOT_COMPARED)
        status = _status(finding, change)
        if status is None:
            continue
        side = stated.laterality if stated and stated.laterality else finding.laterality
        reported.append(ReportedFinding(
            code=finding.code,
            display=finding.display,
            snomed_code=finding.snomed_code,
            status=status,
            probability=finding.probability,
            threshold=finding.threshold,
            laterality=LATERALITY_OF_SIDE.get(side, Laterality.UNSPECIFIED),
            change=change,
            model=model,
            prior_laterality=LATERALITY_OF_SIDE.get(stated.prior_laterality) if stated else None,
        ))
    reported.sort(key=lambda f: (_ORDER.index(f.status), -f.probability))
    prior = (
        PriorReference(comparison.prior.study_instance_uid, study_date_of(comparison.prior.study_date),
                       from_report=comparison.prior.from_report)
        if has_prior
        else None
    )
    return ReportedFindings(
        study_instance_uid=current.study.study_instance_uid,
        model=model,
        prior=prior,
        compared=compared,
        findings=tuple(reported),
        assessed_codes=tuple(f.code for f in current.findings),
        devices=_with_changes(reported_devices(current.devices), comparison.device_changes),
        devices_model=ModelProvenance.of(current.devices_model) if current.HasField("devices_model") else None,
        removed_devices=_removed(comparison),
    )


def _device_key(change: messages_pb2.DeviceComparison) -> str:
    """The code of the device a comparison is about ("device:ett", "device:ett:2"); "" for an unknown kind."""
    kind = DEVICE_TYPE_OF_KIND.get(change.kind)
    if kind is None:
        return ""
    return device_code(kind) + (f":{change.number}" if change.number > 1 else "")


def _with_changes(
    devices: tuple[ReportedDevice, ...], changes: Iterable[messages_pb2.DeviceComparison]
) -> tuple[ReportedDevice, ...]:
    """The devices with their change since the prior, matched by code (kind and number)."""
    by_code = {_device_key(c): c for c in changes}
    return tuple(_changed(device, by_code[device.code]) if device.code in by_code else device for device in devices)


def _changed(device: ReportedDevice, change: messages_pb2.DeviceComparison) -> ReportedDevice:
    """The device with its change since the prior (the movement to 0.1 mm, as its distance)."""
    movement = round(change.tip_movement_mm, 1) if change.HasField("tip_movement_mm") else None
    return replace(device, change=_DEVICE_CHANGE.get(change.change), tip_movement_mm=movement)


def _removed(comparison: messages_pb2.PriorComparison) -> tuple[ReportedDevice, ...]:
    """The prior's tubes and lines that the comparison calls removed, as the prior reported them."""
    gone = {_device_key(c) for c in comparison.device_changes if c.change == messages_pb2.DEVICE_CHANGE_REMOVED}
    if not gone or not comparison.HasField("prior"):
        return ()
    return tuple(replace(device, change=DeviceChangeSincePrior.REMOVED)
                 for device in reported_devices(comparison.prior.devices) if device.code in gone)
