"""Observation resources for tubes and lines: one per reported device, with its placement call and tip distance.

Not the Device resource (fhir/device.py), which is the algorithm. The code is the device kind in Hilum's finding
code system ("device:ett", the vocabulary of common/reported_findings.DeviceType); the value is the placement
call, "not-assessed" when none was made; components carry the probability, the tip distance in mm with its
landmark, how the distance was measured (or why it was not) and the reason for the call (or for no call).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import (
    HILUM_CHANGE_SYSTEM,
    HILUM_COMPONENT_SYSTEM,
    HILUM_DEVICE_POSITION_SYSTEM,
    HILUM_FINDING_SYSTEM,
    OBSERVATION_CATEGORY,
    UCUM,
    V3_INTERPRETATION,
)
from hilum.common.fhir.imaging_study import as_model_date_time
from hilum.common.fhir.observation import (
    AI_ASSERTED,
    CHANGE_COMPONENT,
    PROBABILITY_COMPONENT,
    THORAX,
    observation_identifier,
)
from hilum.common.reported_findings import (
    DEVICE_DISPLAY,
    DeviceChangeSincePrior,
    DevicePosition,
    ReportedDevice,
    device_code,
)
from hilum.common.wording import DEMO_WARNING

# The placement call in Hilum's device-position code system (the DICOM SR uses the same codes in 99HILUM).
POSITION_VALUES = {
    DevicePosition.SATISFACTORY: Coding(
        system=HILUM_DEVICE_POSITION_SYSTEM, code="satisfactory", display="Satisfactory position"
    ),
    DevicePosition.MALPOSITIONED: Coding(
        system=HILUM_DEVICE_POSITION_SYSTEM, code="malpositioned", display="Malpositioned"
    ),
    DevicePosition.INDETERMINATE: Coding(
        system=HILUM_DEVICE_POSITION_SYSTEM, code="indeterminate", display="Position indeterminate"
    ),
}
NOT_ASSESSED = Coding(system=HILUM_DEVICE_POSITION_SYSTEM, code="not-assessed", display="Position not assessed")

# The call as an interpretation (v3-ObservationInterpretation); a device with no call gets none.
_INTERPRETATION = {
    DevicePosition.SATISFACTORY: Coding(system=V3_INTERPRETATION, code="N", display="Normal"),
    DevicePosition.MALPOSITIONED: Coding(system=V3_INTERPRETATION, code="A", display="Abnormal"),
    DevicePosition.INDETERMINATE: Coding(system=V3_INTERPRETATION, code="IND", display="Indeterminate"),
}

TIP_DISTANCE_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="tip-distance", display="Tip distance above reference landmark"
)
LANDMARK_COMPONENT = Coding(system=HILUM_COMPONENT_SYSTEM, code="reference-landmark", display="Reference landmark")
MEASUREMENT_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="distance-measurement", display="Distance measurement method"
)
POSITION_REASON_COMPONENT = Coding(system=HILUM_COMPONENT_SYSTEM, code="position-reason", display="Position reason")
TIP_MOVEMENT_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="tip-movement", display="Tip movement since prior (positive: withdrawn)"
)
# A tube's or line's change since the prior in Hilum's change code system (the code is the DeviceChangeSincePrior
# value; a removed device has no Observation on the current study).
DEVICE_CHANGE_DISPLAYS = {
    DeviceChangeSincePrior.INSERTED: "Inserted since prior",
    DeviceChangeSincePrior.MOVED: "Moved since prior",
    DeviceChangeSincePrior.UNCHANGED: "Position unchanged since prior",
    DeviceChangeSincePrior.NOT_COMPARED: "Not compared with prior",
}


def position_value(device: ReportedDevice) -> Coding:
    """The device's placement call, or NOT_ASSESSED when none was made."""
    return POSITION_VALUES[device.position] if device.position_called else NOT_ASSESSED


def _millimetres(value: float) -> Quantity:
    """A UCUM length in mm to 0.1 mm (what the geometry resolves)."""
    return Quantity(value=Decimal(f"{value:.1f}"), unit="mm", system=UCUM, code="mm")


def _text(component: Coding, value: str) -> ObservationComponent:
    """A component whose value is a string."""
    return ObservationComponent(code=CodeableConcept(coding=[component]), valueString=value)


def _components(device: ReportedDevice) -> list[ObservationComponent]:
    """Probability; the tip distance and its landmark when measured; the measurement and the reason when given; the
    change since the prior and the tip's movement when compared."""
    components = [
        ObservationComponent(
            code=CodeableConcept(coding=[PROBABILITY_COMPONENT]),
            valueQuantity=Quantity(value=Decimal(f"{device.probability:.4f}"), unit="1", system=UCUM, code="1"),
        )
    ]
    if device.tip_distance_mm is not None and device.landmark is not None:
        components.append(ObservationComponent(
            code=CodeableConcept(coding=[TIP_DISTANCE_COMPONENT], text=f"Tip distance above the {device.landmark}"),
            valueQuantity=_millimetres(device.tip_distance_mm),
        ))
    if device.landmark is not None:
        components.append(_text(LANDMARK_COMPONENT, device.landmark))
    if device.measurement:
        components.append(_text(MEASUREMENT_COMPONENT, device.measurement))
    if device.position_reason:
        components.append(_text(POSITION_REASON_COMPONENT, device.position_reason))
    change = device.change
    if change is not None and change in DEVICE_CHANGE_DISPLAYS:
        coding = Coding(system=HILUM_CHANGE_SYSTEM, code=change.value, display=DEVICE_CHANGE_DISPLAYS[change])
        components.append(ObservationComponent(code=CodeableConcept(coding=[CHANGE_COMPONENT]),
                                               valueCodeableConcept=CodeableConcept(coding=[coding])))
    if device.tip_movement_mm is not None:
        components.append(ObservationComponent(code=CodeableConcept(coding=[TIP_MOVEMENT_COMPONENT]),
                                               valueQuantity=_millimetres(device.tip_movement_mm)))
    return components


def build_device_observation(
    device: ReportedDevice,
    *,
    study_instance_uid: str,
    model_version: str,
    demo_weights: bool,
    subject: Reference,
    algorithm: Reference,
    derived_from: list[Reference],
    effective: datetime | date | None,
    issued: datetime,
) -> Observation:
    """Preliminary imaging Observation for one reported tube or line, AI-asserted, derived from the study.

    The identifier names the device's reported code ("device:ett:2" for a second ETT), the code its kind;
    algorithm: the Device resource of the model that found it; demo_weights adds the warning note.
    """
    value = position_value(device)
    interpretation = _INTERPRETATION[device.position] if device.position_called else None
    return Observation(
        meta=Meta(security=[AI_ASSERTED]),
        identifier=[observation_identifier(study_instance_uid, model_version, device.code)],
        status="preliminary",
        category=[
            CodeableConcept(coding=[Coding(system=OBSERVATION_CATEGORY, code="imaging", display="Imaging")])
        ],
        code=CodeableConcept(
            coding=[Coding(system=HILUM_FINDING_SYSTEM, code=device_code(device.kind),
                           display=DEVICE_DISPLAY[device.kind])],
            text=device.display,
        ),
        subject=subject,
        effectiveDateTime=as_model_date_time(effective),
        issued=issued,
        valueCodeableConcept=CodeableConcept(coding=[value], text=value.display),
        interpretation=[CodeableConcept(coding=[interpretation])] if interpretation is not None else None,
        bodySite=THORAX,
        note=[Annotation(text=DEMO_WARNING)] if demo_weights else None,
        device=algorithm,
        derivedFrom=derived_from,
        component=_components(device),
    )
