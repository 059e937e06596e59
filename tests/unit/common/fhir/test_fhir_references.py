"""Conditional references and search criteria for resources Hilum does not own."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.identifier import Identifier

from hilum.common.fhir.references import conditional_reference, escape_token, if_none_exist, token_criteria


def test_token_criteria_escape_the_search_syntax_in_system_and_value() -> None:
    assert token_criteria("_tag", "urn:a|b", "x,y$z") == "_tag=urn:a%5C%7Cb|x%5C%2Cy%5C%24z"


def test_criteria_need_both_system_and_value() -> None:
    with pytest.raises(ValueError, match="system and value"):
        token_criteria("identifier", "", "x")
    with pytest.raises(ValueError, match="system and value"):
        if_none_exist(Identifier(system="urn:a"))


def test_a_resolved_reference_carries_the_search_and_the_identifier() -> None:
    reference = conditional_reference("Patient", Identifier(system="urn:mrn", value="M 1", use="usual"))
    assert reference.model_dump(mode="json", exclude_none=True) == {
        "reference": "Patient?identifier=urn:mrn|M%201", "type": "Patient",
        "identifier": {"system": "urn:mrn", "value": "M 1"},
    }


def test_a_logical_reference_carries_the_identifier_only() -> None:
    reference = conditional_reference("ServiceRequest", Identifier(system="urn:acc", value="A1"), resolve=False)
    assert reference.reference is None
    assert reference.identifier is not None and reference.identifier.value == "A1"


def test_escape_token_escapes_search_syntax_without_url_encoding() -> None:
    assert escape_token("a|b,c$d\\e f") == "a\\|b\\,c\\$d\\\\e f"
