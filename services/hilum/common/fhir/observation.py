"""Observation resources: one per reported finding, with probability, threshold and change since prior.

Which findings are reported, with which status and change, is decided by common/reported_findings.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import (
    AI_ASSERTED_CODE,
    AI_ASSERTED_DISPLAY,
    HILUM_CHANGE_SYSTEM,
    HILUM_COMPONENT_SYSTEM,
    HILUM_FINDING_SYSTEM,
    OBSERVATION_CATEGORY,
    RFC3986,
    SNOMED,
    UCUM,
    V3_INTERPRETATION,
    V3_OBSERVATION_VALUE,
    observation_identifier_value,
)
from hilum.common.fhir.imaging_study import as_model_date_time
from hilum.common.reported_findings import ChangeSincePrior, FindingStatus, Laterality, ReportedFinding
from hilum.common.wording import DEMO_WARNING

# The reported status as a SNOMED CT qualifier value: a resolved finding is absent now.
PRESENT = Coding(system=SNOMED, code="52101004", display="Present")
INDETERMINATE = Coding(system=SNOMED, code="82334004", display="Indeterminate")
ABSENT = Coding(system=SNOMED, code="2667000", display="Absent")

# The reported status as an interpretation (v3-ObservationInterpretation): positive, indeterminate, negative.
_INTERPRETATION = {
    FindingStatus.PRESENT: Coding(system=V3_INTERPRETATION, code="POS", display="Positive"),
    FindingStatus.UNCERTAIN: Coding(system=V3_INTERPRETATION, code="IND", display="Indeterminate"),
    FindingStatus.RESOLVED: Coding(system=V3_INTERPRETATION, code="NEG", display="Negative"),
}

# Every finding Hilum reports is in the chest (SNOMED CT body structure).
THORAX = CodeableConcept(coding=[Coding(system=SNOMED, code="51185008", display="Thoracic structure")], text="Chest")

STATUS_VALUES = {
    FindingStatus.PRESENT: PRESENT,
    FindingStatus.UNCERTAIN: INDETERMINATE,
    FindingStatus.RESOLVED: ABSENT,
}

# Change since prior in Hilum's change code system (the code is the ChangeSincePrior value).
CHANGE_DISPLAYS = {
    ChangeSincePrior.NEW: "New since prior",
    ChangeSincePrior.UNCHANGED: "Unchanged since prior",
    ChangeSincePrior.RESOLVED: "Resolved since prior",
    ChangeSincePrior.NOT_COMPARED: "Not compared with prior",
    ChangeSincePrior.IMPROVED: "Improved since prior",
    ChangeSincePrior.WORSENED: "Worsened since prior",
}

# Side of the chest as a SNOMED CT qualifier value; an unspecified side gets no component.
LATERALITY_VALUES = {
    Laterality.LEFT: Coding(system=SNOMED, code="7771000", display="Left"),
    Laterality.RIGHT: Coding(system=SNOMED, code="24028007", display="Right"),
    Laterality.BILATERAL: Coding(system=SNOMED, code="51440002", display="Right and left"),
}

PROBABILITY_COMPONENT = Coding(system=HILUM_COMPONENT_SYSTEM, code="probability", display="Model probability")
THRESHOLD_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="operating-threshold", display="Operating threshold"
)
CHANGE_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="change-since-prior", display="Change since prior"
)
PRIOR_LATERALITY_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="prior-laterality", display="Laterality on the prior study"
)
LATERALITY_COMPONENT = Coding(system=HILUM_COMPONENT_SYSTEM, code="laterality", display="Laterality")

AI_ASSERTED = Coding(system=V3_OBSERVATION_VALUE, code=AI_ASSERTED_CODE, display=AI_ASSERTED_DISPLAY)


def observation_identifier(study_instance_uid: str, model_version: str, finding_code: str) -> Identifier:
    """The stable Observation identifier (system urn:ietf:rfc:3986) for one finding of one study."""
    return Identifier(
        system=RFC3986, value=observation_identifier_value(study_instance_uid, model_version, finding_code)
    )


def finding_code(finding: ReportedFinding) -> CodeableConcept:
    """The finding as a Hilum code plus its SNOMED CT concept where the label has one."""
    codings = [Coding(system=HILUM_FINDING_SYSTEM, code=finding.code, display=finding.display or None)]
    if finding.snomed_code:
        codings.append(Coding(system=SNOMED, code=finding.snomed_code, display=finding.display or None))
    return CodeableConcept(coding=codings, text=finding.display or finding.code)


def _fraction(value: float) -> Quantity:
    """A dimensionless UCUM quantity (unit "1"), rounded to 4 places so float32 noise never shows."""
    return Quantity(value=Decimal(f"{value:.4f}"), unit="1", system=UCUM, code="1")


def _coded(component: Coding, value: Coding) -> ObservationComponent:
    """A component whose value is one coding (its display doubling as the text)."""
    return ObservationComponent(
        code=CodeableConcept(coding=[component]),
        valueCodeableConcept=CodeableConcept(coding=[value], text=value.display),
    )


def _components(finding: ReportedFinding) -> list[ObservationComponent]:
    """Probability and threshold; change since prior when a prior was compared; the side when known, and the prior's
    side when the comparison found the sides changed."""
    components = [
        ObservationComponent(
            code=CodeableConcept(coding=[PROBABILITY_COMPONENT]), valueQuantity=_fraction(finding.probability)
        ),
        ObservationComponent(
            code=CodeableConcept(coding=[THRESHOLD_COMPONENT]), valueQuantity=_fraction(finding.threshold)
        ),
    ]
    if finding.change is not None:
        change = Coding(system=HILUM_CHANGE_SYSTEM, code=finding.change.value, display=CHANGE_DISPLAYS[finding.change])
        components.append(_coded(CHANGE_COMPONENT, change))
    if finding.laterality in LATERALITY_VALUES:
        components.append(_coded(LATERALITY_COMPONENT, LATERALITY_VALUES[finding.laterality]))
    if finding.prior_laterality in LATERALITY_VALUES:
        components.append(_coded(PRIOR_LATERALITY_COMPONENT, LATERALITY_VALUES[finding.prior_laterality]))
    return components


def build_observation(
    finding: ReportedFinding,
    *,
    study_instance_uid: str,
    subject: Reference,
    device: Reference,
    derived_from: list[Reference],
    effective: datetime | date | None,
    issued: datetime,
) -> Observation:
    """Preliminary imaging Observation for one reported finding, AI-asserted, derived from the study (and prior).

    The value is the reported status (present, indeterminate, or absent for a resolved finding); the
    finding's model provenance gives the identifier's version and, for demo weights, the warning note.
    """
    value = STATUS_VALUES[finding.status]
    return Observation(
        meta=Meta(security=[AI_ASSERTED]),
        identifier=[observation_identifier(study_instance_uid, finding.model.version, finding.code)],
        status="preliminary",
        category=[
            CodeableConcept(coding=[Coding(system=OBSERVATION_CATEGORY, code="imaging", display="Imaging")])
        ],
        code=finding_code(finding),
        subject=subject,
        effectiveDateTime=as_model_date_time(effective),
        issued=issued,
        valueCodeableConcept=CodeableConcept(coding=[value], text=value.display),
        interpretation=[CodeableConcept(coding=[_INTERPRETATION[finding.status]])],
        bodySite=THORAX,
        note=[Annotation(text=DEMO_WARNING)] if finding.model.demo_weights else None,
        device=device,
        derivedFrom=derived_from,
        component=_components(finding),
    )
