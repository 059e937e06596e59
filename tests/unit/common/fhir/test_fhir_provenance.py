"""Provenance of the report and Observations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.provenance import build_provenance, provenance_tag, tag_criteria

RECORDED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def test_device_is_the_author_and_the_study_the_source() -> None:
    provenance = build_provenance(
        targets=[Reference(reference="urn:uuid:report"), Reference(reference="urn:uuid:obs")],
        devices=[Reference(reference="urn:uuid:device")],
        sources=[Reference(reference="urn:uuid:study")],
        recorded=RECORDED,
        tag=provenance_tag("1.2.3", "v1"),
    )
    data = provenance.model_dump(mode="json")
    assert [t["reference"] for t in data["target"]] == ["urn:uuid:report", "urn:uuid:obs"]
    assert data["recorded"] == "2024-03-05T09:30:00Z"
    (agent,) = data["agent"]
    assert agent["who"] == {"reference": "urn:uuid:device"}
    assert agent["type"]["coding"][0]["code"] == "author"
    assert data["entity"] == [{"role": "source", "what": {"reference": "urn:uuid:study"}}]
    assert data["activity"]["coding"][0]["code"] == "CREATE"


def test_each_algorithm_is_an_author_and_a_revised_report_is_named() -> None:
    provenance = build_provenance(
        targets=[Reference(reference="urn:uuid:report")],
        devices=[Reference(reference="urn:uuid:findings"), Reference(reference="urn:uuid:devices")],
        sources=[Reference(reference="urn:uuid:study")],
        recorded=RECORDED,
        tag=provenance_tag("1.2.3", "v2"),
        revises=Reference(reference="DiagnosticReport?identifier=urn:ietf:rfc:3986|urn:hilum:report:1.2.3:v1"),
    )
    data = provenance.model_dump(mode="json")
    assert [agent["who"]["reference"] for agent in data["agent"]] == ["urn:uuid:findings", "urn:uuid:devices"]
    assert data["entity"][-1] == {
        "role": "revision",
        "what": {"reference": "DiagnosticReport?identifier=urn:ietf:rfc:3986|urn:hilum:report:1.2.3:v1"},
    }
    assert data["activity"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE", "display": "revise"}


def test_provenance_needs_an_algorithm() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        build_provenance(targets=[Reference(reference="urn:uuid:r")], devices=[], sources=[], recorded=RECORDED,
                         tag=provenance_tag("1.2.3", "v1"))


def test_provenance_needs_a_target() -> None:
    with pytest.raises(ValueError, match="target"):
        build_provenance(targets=[], devices=[Reference(reference="urn:uuid:d")], sources=[], recorded=RECORDED,
                         tag=provenance_tag("1.2.3", "v1"))


def test_the_tag_makes_the_provenance_of_a_report_findable_for_a_conditional_create() -> None:
    tag = provenance_tag("1.2.3", "v1")
    assert tag.system == "https://hilum.dev/fhir/CodeSystem/report-provenance"
    assert tag.code == "urn:hilum:report:1.2.3:v1"
    assert tag_criteria(tag) == "_tag=https://hilum.dev/fhir/CodeSystem/report-provenance|urn:hilum:report:1.2.3:v1"
    assert provenance_tag("1.2.3", "v2").code != tag.code
