"""The report's basedOn: the hospital's order, by placer order number or accession number."""

from __future__ import annotations

from dataclasses import replace

from hilum.common.fhir.order import order_identifier, order_reference
from hilum.common.settings import FhirSection
from hilum.common.study import StudyInfo

FHIR = FhirSection(accession_identifier_system="urn:acc", placer_order_identifier_system="urn:placer")


def test_the_placer_order_number_names_the_order_first(study: StudyInfo) -> None:
    identifier = order_identifier(replace(study, placer_order_number="PO-7"), FHIR)
    assert identifier is not None
    assert (identifier.system, identifier.value) == ("urn:placer", "PO-7")
    assert identifier.type is not None and identifier.type.coding is not None
    assert identifier.type.coding[0].code == "PLAC"


def test_without_a_placer_number_the_accession_number_names_it(study: StudyInfo) -> None:
    identifier = order_identifier(replace(study, placer_order_number="", accession_number="ACC9"), FHIR)
    assert identifier is not None and (identifier.system, identifier.value) == ("urn:acc", "ACC9")
    assert identifier.type is not None and identifier.type.coding is not None
    assert identifier.type.coding[0].code == "ACSN"


def test_a_study_with_neither_has_no_order(study: StudyInfo) -> None:
    assert order_reference(replace(study, placer_order_number="", accession_number=""), FHIR) is None


def test_the_reference_form_follows_the_setting(study: StudyInfo) -> None:
    study = replace(study, placer_order_number="", accession_number="ACC9")
    conditional = order_reference(study, FHIR)
    assert conditional is not None and conditional.reference == "ServiceRequest?identifier=urn:acc|ACC9"
    logical = order_reference(study, FHIR.model_copy(update={"order_reference": "identifier"}))
    assert logical is not None and logical.reference is None and logical.type == "ServiceRequest"
    assert order_reference(study, FHIR.model_copy(update={"order_reference": "none"})) is None
