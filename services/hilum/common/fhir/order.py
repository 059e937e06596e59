"""The order a study fulfils, as the report's `basedOn`: the hospital's ServiceRequest, found by its number.

The placer order number is the order's own identifier (v2-0203 PLC); without one, the study's accession
number (ACSN) names it. Which form the reference takes is the operator's choice (FhirSection.order_reference).
"""

from __future__ import annotations

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import V2_0203
from hilum.common.fhir.references import conditional_reference
from hilum.common.settings import FhirSection
from hilum.common.study import StudyInfo

PLACER_ORDER = Coding(system=V2_0203, code="PLAC", display="Placer Identifier")
ACCESSION = Coding(system=V2_0203, code="ACSN", display="Accession ID")


def order_identifier(study: StudyInfo, fhir: FhirSection) -> Identifier | None:
    """The order's placer number, else the study's accession number; None when the study has neither."""
    if study.placer_order_number:
        return Identifier(type=CodeableConcept(coding=[PLACER_ORDER]), system=fhir.placer_order_identifier_system,
                          value=study.placer_order_number)
    if study.accession_number:
        return Identifier(type=CodeableConcept(coding=[ACCESSION]), system=fhir.accession_identifier_system,
                          value=study.accession_number)
    return None


def order_reference(study: StudyInfo, fhir: FhirSection) -> Reference | None:
    """The report's basedOn reference to its ServiceRequest, in the configured form; None when not wanted."""
    identifier = order_identifier(study, fhir)
    if identifier is None or fhir.order_reference == "none":
        return None
    return conditional_reference("ServiceRequest", identifier, resolve=fhir.order_reference == "conditional")
