"""Tubes and lines from the landmark model's points: which devices are there, their tips measured and judged.

A device is reported when the landmark model found its tip with at least DEFAULT_MIN_CONFIDENCE. Its tip is
measured against its reference landmark with the image's pixel spacing (device_geometry: which spacing, and
never a number without one) and judged by the adult placement rules (device_placement: no call for a patient
under 18, an unknown age, or a kind without a sourced rule). The DICOM header gives the spacing and the age.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydicom.dataset import Dataset

from hilum.common.dicom.attributes import date_of, text
from hilum.common.reported_findings import DEVICE_KIND_OF_TYPE, DevicePosition
from hilum.inference.device_geometry import Landmark, spacing_of
from hilum.inference.device_placement import DEFAULT_MIN_CONFIDENCE, REFERENCE_LANDMARK, Placement, age_at_study, assess
from hilum.inference.landmarks import LandmarkSpec
from hilum.v1 import messages_pb2

_POSITION = {
    DevicePosition.SATISFACTORY: messages_pb2.DEVICE_POSITION_SATISFACTORY,
    DevicePosition.MALPOSITIONED: messages_pb2.DEVICE_POSITION_MALPOSITIONED,
    DevicePosition.INDETERMINATE: messages_pb2.DEVICE_POSITION_INDETERMINATE,
}


def device_findings(
    specs: Sequence[LandmarkSpec], found: Sequence[Landmark], read_header: Callable[[], Dataset]
) -> list[messages_pb2.DeviceFinding]:
    """The devices whose tips the landmark model found (found[i] is the point of specs[i]), in landmark-map order,
    each measured and judged with the spacing and patient age of the image's DICOM header, read (read_header) only
    when there is a tip to measure."""
    if not found:  # no devices model ran
        return []
    tips = [(spec.device, tip) for spec, tip in zip(specs, found, strict=True)
            if spec.device is not None and tip.confidence >= DEFAULT_MIN_CONFIDENCE]
    if not tips:
        return []
    header = read_header()
    spacing = spacing_of(header)
    age = age_at_study(text(header, "PatientAge"), date_of(header, "PatientBirthDate"), date_of(header, "StudyDate"))
    anatomy = {spec.display.lower(): point for spec, point in zip(specs, found, strict=True) if spec.device is None}
    findings = []
    for device, tip in tips:
        landmark = REFERENCE_LANDMARK.get(device, "")
        placement = assess(device, tip, anatomy.get(landmark), spacing, age)
        findings.append(_finding(placement, tip.confidence, landmark))
    return findings


def _finding(placement: Placement, confidence: float, landmark: str) -> messages_pb2.DeviceFinding:
    """The DeviceFinding of one placement: the call (or none, with why) and the tip's measured height."""
    height = placement.tip_above_reference
    finding = messages_pb2.DeviceFinding(
        kind=DEVICE_KIND_OF_TYPE[placement.device],
        probability=confidence,
        landmark=landmark,
        measurement="" if height is None else height.note,
        position_reason=placement.reason,
        position_called=placement.call is not None,
    )
    if placement.call is not None:
        finding.position = _POSITION[placement.call]
    if height is not None and height.value_mm is not None:
        finding.tip_distance_mm = height.value_mm
    return finding
