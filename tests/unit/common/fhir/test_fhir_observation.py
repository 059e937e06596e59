"""Observations: what each one says about its reported finding (which findings are reported: test_reported_findings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.observation import build_observation
from hilum.common.reported_findings import (
    ChangeSincePrior,
    FindingStatus,
    Laterality,
    ModelProvenance,
    ReportedFinding,
    ReportedFindings,
    reported_findings,
)
from hilum.common.wording import DEMO_WARNING
from hilum.v1 import messages_pb2

SUBJECT = Reference(reference="urn:uuid:patient")
DEVICE = Reference(reference="urn:uuid:device")
STUDIES = [Reference(reference="urn:uuid:study"), Reference(reference="urn:uuid:prior")]
ISSUED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def _observation(finding: ReportedFinding) -> dict[str, Any]:
    observation = build_observation(
        finding,
        study_instance_uid="1.2.3",
        subject=SUBJECT,
        device=DEVICE,
        derived_from=STUDIES,
        effective=datetime(2024, 3, 5, 8, 0, tzinfo=UTC),
        issued=ISSUED,
    )
    return observation.model_dump(mode="json")


def _finding(reported: ReportedFindings, code: str) -> ReportedFinding:
    (finding,) = [f for f in reported.findings if f.code == code]
    return finding


def _component(data: dict[str, Any], code: str) -> dict[str, Any] | None:
    matches = [c for c in data["component"] if c["code"]["coding"][0]["code"] == code]
    return matches[0] if matches else None


def test_present_finding_observation(reported: ReportedFindings) -> None:
    data = _observation(_finding(reported, "pneumothorax"))
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
    assert data["note"] == [{"text": DEMO_WARNING}]


def test_uncertain_finding_is_indeterminate(reported: ReportedFindings) -> None:
    data = _observation(_finding(reported, "effusion"))
    assert data["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "82334004",
        "display": "Indeterminate",
    }


def test_resolved_finding_is_absent_and_resolved(reported: ReportedFindings) -> None:
    data = _observation(_finding(reported, "cardiomegaly"))
    assert data["valueCodeableConcept"]["coding"][0]["code"] == "2667000"  # Absent
    change = _component(data, "change-since-prior")
    assert change is not None
    assert change["valueCodeableConcept"]["coding"][0] == {
        "system": "https://hilum.dev/fhir/CodeSystem/change-since-prior",
        "code": "resolved",
        "display": "Resolved since prior",
    }


def test_no_change_component_and_no_demo_note_for_validated_weights_without_prior(
    comparison_factory: Callable[..., messages_pb2.PriorComparison],
) -> None:
    reported = reported_findings(comparison_factory(demo=False, with_prior=False))
    data = _observation(_finding(reported, "pneumothorax"))
    assert _component(data, "change-since-prior") is None
    assert "note" not in data
    assert data["identifier"][0]["value"] == "urn:hilum:observation:1.2.3:1.0.0:pneumothorax"


def test_no_change_component_when_the_prior_had_no_findings(comparison: messages_pb2.PriorComparison) -> None:
    del comparison.prior.findings[:]
    data = _observation(_finding(reported_findings(comparison), "pneumothorax"))
    assert _component(data, "change-since-prior") is None


def test_unspecified_laterality_has_no_component_a_known_side_has_one(reported: ReportedFindings) -> None:
    finding = _finding(reported, "pneumothorax")
    assert _component(_observation(finding), "laterality") is None
    right = _component(_observation(replace(finding, laterality=Laterality.RIGHT)), "laterality")
    assert right is not None
    assert right["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "24028007",
        "display": "Right",
    }


def test_a_side_swap_or_an_extent_change_is_coded_with_the_prior_side(reported: ReportedFindings) -> None:
    finding = replace(_finding(reported, "pneumothorax"), change=ChangeSincePrior.WORSENED,
                      laterality=Laterality.BILATERAL, prior_laterality=Laterality.LEFT)
    data = _observation(finding)
    change, before = _component(data, "change-since-prior"), _component(data, "prior-laterality")
    assert change is not None and before is not None
    assert change["valueCodeableConcept"]["coding"][0]["display"] == "Worsened since prior"
    assert before["valueCodeableConcept"]["coding"][0]["code"] == "7771000"  # Left
    assert _component(_observation(replace(finding, prior_laterality=None)), "prior-laterality") is None
    for every in ChangeSincePrior:  # every change has its coding
        assert _component(_observation(replace(finding, change=every)), "change-since-prior") is not None


def test_label_without_snomed_has_only_the_hilum_code() -> None:
    finding = ReportedFinding(
        code="nodule",
        display="Nodule",
        snomed_code="",
        status=FindingStatus.PRESENT,
        probability=0.7,
        threshold=0.5,
        laterality=Laterality.UNSPECIFIED,
        change=None,
        model=ModelProvenance(name="cxr_findings", version="1", demo_weights=False),
    )
    data = _observation(finding)
    assert [c["system"] for c in data["code"]["coding"]] == ["https://hilum.dev/fhir/CodeSystem/cxr-finding"]
    assert data["code"]["text"] == "Nodule"
