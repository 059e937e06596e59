"""Observation resources: one per reported finding, with probability, threshold and change since prior."""

from __future__ import annotations

from dataclasses import dataclass
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
    DEMO_WARNING,
    HILUM_CHANGE_SYSTEM,
    HILUM_COMPONENT_SYSTEM,
    HILUM_FINDING_SYSTEM,
    OBSERVATION_CATEGORY,
    RFC3986,
    SNOMED,
    UCUM,
    V3_OBSERVATION_VALUE,
    observation_identifier_value,
)
from hilum.common.fhir.imaging_study import as_model_date_time
from hilum.v1 import messages_pb2

# Finding state as a SNOMED CT qualifier value.
PRESENT = Coding(system=SNOMED, code="52101004", display="Present")
INDETERMINATE = Coding(system=SNOMED, code="82334004", display="Indeterminate")
ABSENT = Coding(system=SNOMED, code="2667000", display="Absent")

_STATE_VALUE = {
    messages_pb2.FINDING_STATE_PRESENT: PRESENT,
    messages_pb2.FINDING_STATE_UNCERTAIN: INDETERMINATE,
    messages_pb2.FINDING_STATE_ABSENT: ABSENT,
}

# Change since prior in Hilum's change code system: (code, display).
CHANGE_CODES: dict[int, tuple[str, str]] = {
    messages_pb2.CHANGE_NEW: ("new", "New since prior"),
    messages_pb2.CHANGE_UNCHANGED: ("unchanged", "Unchanged since prior"),
    messages_pb2.CHANGE_RESOLVED: ("resolved", "Resolved since prior"),
    messages_pb2.CHANGE_NOT_COMPARED: ("not-compared", "Not compared with prior"),
}

PROBABILITY_COMPONENT = Coding(system=HILUM_COMPONENT_SYSTEM, code="probability", display="Model probability")
THRESHOLD_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="operating-threshold", display="Operating threshold"
)
CHANGE_COMPONENT = Coding(
    system=HILUM_COMPONENT_SYSTEM, code="change-since-prior", display="Change since prior"
)

AI_ASSERTED = Coding(system=V3_OBSERVATION_VALUE, code=AI_ASSERTED_CODE, display=AI_ASSERTED_DISPLAY)


@dataclass(frozen=True)
class ReportedFinding:
    """A finding that gets an Observation, with its change since prior (None when there is no prior)."""

    finding: messages_pb2.Finding
    change: messages_pb2.Change.ValueType | None


def reported_findings(comparison: messages_pb2.PriorComparison) -> list[ReportedFinding]:
    """Findings that are present or uncertain, plus absent ones that resolved since the prior.

    A resolved finding is absent now by definition; it is reported so that "resolved" reaches the EHR.
    """
    has_prior = comparison.HasField("prior")
    changes = {change.code: change.change for change in comparison.changes}
    reported: list[ReportedFinding] = []
    for finding in comparison.current.findings:
        change = changes.get(finding.code, messages_pb2.CHANGE_NOT_COMPARED) if has_prior else None
        shown = finding.state in (messages_pb2.FINDING_STATE_PRESENT, messages_pb2.FINDING_STATE_UNCERTAIN)
        resolved = (
            finding.state == messages_pb2.FINDING_STATE_ABSENT and change == messages_pb2.CHANGE_RESOLVED
        )
        if shown or resolved:
            reported.append(ReportedFinding(finding=finding, change=change))
    return reported


def observation_identifier(study_instance_uid: str, model_version: str, finding_code: str) -> Identifier:
    """The stable Observation identifier (system urn:ietf:rfc:3986) for one finding of one study."""
    return Identifier(
        system=RFC3986, value=observation_identifier_value(study_instance_uid, model_version, finding_code)
    )


def finding_code(finding: messages_pb2.Finding) -> CodeableConcept:
    """The finding as a Hilum code plus its SNOMED CT concept where the label has one."""
    codings = [Coding(system=HILUM_FINDING_SYSTEM, code=finding.code, display=finding.display or None)]
    if finding.snomed_code:
        codings.append(Coding(system=SNOMED, code=finding.snomed_code, display=finding.display or None))
    return CodeableConcept(coding=codings, text=finding.display or finding.code)


def _fraction(value: float) -> Quantity:
    """A dimensionless UCUM quantity (unit "1"), rounded to 4 places so float32 noise never shows."""
    return Quantity(value=Decimal(f"{value:.4f}"), unit="1", system=UCUM, code="1")


def _components(reported: ReportedFinding) -> list[ObservationComponent]:
    """Probability and threshold components, plus change since prior when a prior was compared."""
    components = [
        ObservationComponent(
            code=CodeableConcept(coding=[PROBABILITY_COMPONENT]),
            valueQuantity=_fraction(reported.finding.probability),
        ),
        ObservationComponent(
            code=CodeableConcept(coding=[THRESHOLD_COMPONENT]),
            valueQuantity=_fraction(reported.finding.threshold),
        ),
    ]
    if reported.change is not None and reported.change in CHANGE_CODES:
        code, display = CHANGE_CODES[reported.change]
        components.append(
            ObservationComponent(
                code=CodeableConcept(coding=[CHANGE_COMPONENT]),
                valueCodeableConcept=CodeableConcept(
                    coding=[Coding(system=HILUM_CHANGE_SYSTEM, code=code, display=display)], text=display
                ),
            )
        )
    return components


def build_observation(
    reported: ReportedFinding,
    *,
    study_instance_uid: str,
    model: messages_pb2.ModelInfo,
    subject: Reference,
    device: Reference,
    derived_from: list[Reference],
    effective: datetime | date | None,
    issued: datetime,
) -> Observation:
    """Preliminary imaging Observation for one finding, AI-asserted, derived from the study (and prior)."""
    value = _STATE_VALUE.get(reported.finding.state)
    if value is None:
        raise ValueError(f"finding {reported.finding.code!r} has no state")
    return Observation(
        meta=Meta(security=[AI_ASSERTED]),
        identifier=[observation_identifier(study_instance_uid, model.version, reported.finding.code)],
        status="preliminary",
        category=[
            CodeableConcept(coding=[Coding(system=OBSERVATION_CATEGORY, code="imaging", display="Imaging")])
        ],
        code=finding_code(reported.finding),
        subject=subject,
        effectiveDateTime=as_model_date_time(effective),
        issued=issued,
        valueCodeableConcept=CodeableConcept(coding=[value], text=value.display),
        note=[Annotation(text=DEMO_WARNING)] if model.demo_weights else None,
        device=device,
        derivedFrom=derived_from,
        component=_components(reported),
    )
