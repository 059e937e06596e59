"""Observations: which findings get one, and what each one says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.observation import ReportedFinding, build_observation, reported_findings
from hilum.v1 import messages_pb2

SUBJECT = Reference(reference="urn:uuid:patient")
DEVICE = Reference(reference="urn:uuid:device")
STUDIES = [Reference(reference="urn:uuid:study"), Reference(reference="urn:uuid:prior")]
ISSUED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def _observation(reported: ReportedFinding, model: messages_pb2.ModelInfo) -> dict[str, Any]:
    observation = build_observation(
        reported,
        study_instance_uid="1.2.3",
        model=model,
        subject=SUBJECT,
        device=DEVICE,
        derived_from=STUDIES,
        effective=datetime(2024, 3, 5, 8, 0, tzinfo=UTC),
        issued=ISSUED,
    )
    return observation.model_dump(mode="json")


def _by_code(reported: list[ReportedFinding]) -> dict[str, ReportedFinding]:
    return {r.finding.code: r for r in reported}


def _component(data: dict[str, Any], code: str) -> dict[str, Any] | None:
    matches = [c for c in data["component"] if c["code"]["coding"][0]["code"] == code]
    return matches[0] if matches else None


def test_present_uncertain_and_resolved_findings_are_reported(
    comparison: messages_pb2.PriorComparison,
) -> None:
    reported = _by_code(reported_findings(comparison))
    assert set(reported) == {"pneumothorax", "effusion", "cardiomegaly"}  # nodule: absent and unchanged
    assert reported["pneumothorax"].change == messages_pb2.CHANGE_NEW
    assert reported["cardiomegaly"].change == messages_pb2.CHANGE_RESOLVED


def test_without_prior_there_is_no_change(
    comparison_factory: Callable[..., messages_pb2.PriorComparison],
) -> None:
    reported = _by_code(reported_findings(comparison_factory(with_prior=False)))
    assert set(reported) == {"pneumothorax", "effusion"}
    assert all(r.change is None for r in reported.values())


def test_a_finding_missing_from_the_changes_is_not_compared(comparison: messages_pb2.PriorComparison) -> None:
    del comparison.changes[:]
    reported = _by_code(reported_findings(comparison))
    assert reported["pneumothorax"].change == messages_pb2.CHANGE_NOT_COMPARED


def test_present_finding_observation(comparison: messages_pb2.PriorComparison) -> None:
    reported = _by_code(reported_findings(comparison))["pneumothorax"]
    data = _observation(reported, comparison.current.model)
    assert data["status"] == "preliminary"
    assert data["category"][0]["coding"][0]["code"] == "imaging"
    codings = {(c["system"], c["code"]) for c in data["code"]["coding"]}
    assert codings == {
        ("https://hilum.dev/fhir/CodeSystem/cxr-finding", "pneumothorax"),
        ("http://snomed.info/sct", "36118008"),
    }
    assert data["valueCodeableConcept"]["coding"][0]["code"] == "52101004"
    probability = _component(data, "probability")
    assert probability is not None
    # float32 0.91 is written as 0.91, not 0.9100000262.
    assert probability["valueQuantity"] == {
        "value": 0.91,
        "unit": "1",
        "system": "http://unitsofmeasure.org",
        "code": "1",
    }
    threshold = _component(data, "operating-threshold")
    assert threshold is not None and threshold["valueQuantity"]["value"] == 0.5
    change = _component(data, "change-since-prior")
    assert change is not None and change["valueCodeableConcept"]["coding"][0]["code"] == "new"
    assert data["device"] == {"reference": "urn:uuid:device"}
    assert [r["reference"] for r in data["derivedFrom"]] == ["urn:uuid:study", "urn:uuid:prior"]
    assert data["meta"]["security"][0]["code"] == "AIAST"
    assert data["identifier"][0]["value"] == "urn:hilum:observation:1.2.3:demo-untrained:pneumothorax"


def test_uncertain_finding_is_indeterminate(comparison: messages_pb2.PriorComparison) -> None:
    data = _observation(_by_code(reported_findings(comparison))["effusion"], comparison.current.model)
    assert data["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "82334004",
        "display": "Indeterminate",
    }


def test_no_change_component_and_no_demo_note_for_validated_weights_without_prior(
    comparison_factory: Callable[..., messages_pb2.PriorComparison],
) -> None:
    comparison = comparison_factory(demo=False, with_prior=False)
    data = _observation(_by_code(reported_findings(comparison))["pneumothorax"], comparison.current.model)
    assert _component(data, "change-since-prior") is None
    assert "note" not in data


def test_label_without_snomed_has_only_the_hilum_code() -> None:
    finding = messages_pb2.Finding(
        code="nodule",
        display="Nodule",
        probability=0.7,
        threshold=0.5,
        state=messages_pb2.FINDING_STATE_PRESENT,
    )
    data = _observation(ReportedFinding(finding=finding, change=None), messages_pb2.ModelInfo(version="1"))
    assert [c["system"] for c in data["code"]["coding"]] == ["https://hilum.dev/fhir/CodeSystem/cxr-finding"]
