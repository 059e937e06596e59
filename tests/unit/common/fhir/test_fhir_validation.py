"""validate_bundle must pass Hilum's bundles and catch what would make them wrong."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from hilum.common.fhir.bundle import build_report_bundle
from hilum.common.fhir.validation import bundle_json, validate_built_bundle, validate_bundle
from hilum.common.reported_findings import ReportedFindings
from hilum.common.study import StudyInfo
from hilum.v1 import messages_pb2


@pytest.fixture
def valid(
    study: StudyInfo,
    reported: ReportedFindings,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> dict[str, Any]:
    bundle = build_report_bundle(
        study,
        reported,
        draft,
        prior_study=prior_study,
        issued=datetime(2024, 3, 5, 9, 30, tzinfo=UTC),
        patient_identifier_system="urn:oid:1.2.3",
    )
    data = bundle_json(bundle)
    assert validate_bundle(data) == []
    return data


def _resource(data: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == kind)


def _problems_after(valid: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> list[str]:
    broken = copy.deepcopy(valid)
    change(broken)
    return validate_bundle(broken)


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return [node]


def test_bundle_json_is_plain_r4_json(valid: dict[str, Any]) -> None:
    leaves = _leaves(valid)
    assert all(isinstance(leaf, str | int | float | bool) for leaf in leaves)
    assert None not in leaves and "" not in leaves
    report = _resource(valid, "DiagnosticReport")
    assert isinstance(report["issued"], str) and isinstance(report["presentedForm"][0]["data"], str)


def test_validation_leaves_its_input_untouched(valid: dict[str, Any]) -> None:
    before = copy.deepcopy(valid)
    validate_bundle(valid)
    assert valid == before


def test_broken_reference_is_caught(valid: dict[str, Any]) -> None:
    def point_elsewhere(data: dict[str, Any]) -> None:
        _resource(data, "Observation")["subject"]["reference"] = (
            "urn:uuid:00000000-0000-0000-0000-000000000000"
        )

    problems = _problems_after(valid, point_elsewhere)
    assert len(problems) == 1
    assert "does not resolve" in problems[0] and ".subject.reference" in problems[0]


def test_missing_conclusion_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: _resource(d, "DiagnosticReport").pop("conclusion"))
    assert any("hilum-dr-1" in p for p in problems)


def test_final_status_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: _resource(d, "DiagnosticReport").update(status="final"))
    assert any("hilum-dr-2" in p for p in problems)


def test_demo_report_without_disclaimer_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(
        valid, lambda d: _resource(d, "DiagnosticReport").update(conclusion="New right pneumothorax.")
    )
    assert any("hilum-demo-1" in p for p in problems)


def test_observation_without_device_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: _resource(d, "Observation").pop("device"))
    assert any("hilum-obs-2" in p for p in problems)


def test_observation_without_ai_label_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: _resource(d, "Observation").pop("meta"))
    assert any("hilum-obs-4" in p for p in problems)


def test_obs_6_data_absent_reason_with_a_value_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(
        valid, lambda d: _resource(d, "Observation").update(dataAbsentReason={"text": "x"})
    )
    assert any("obs-6" in p for p in problems)


def test_device_without_version_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: _resource(d, "Device").pop("version"))
    assert any("hilum-dev-1" in p for p in problems)


def test_duplicate_full_url_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: d["entry"][1].update(fullUrl=d["entry"][0]["fullUrl"]))
    assert any("bdl-7" in p for p in problems)


def test_local_reference_without_contained_resource_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(
        valid, lambda d: _resource(d, "Observation")["subject"].update(reference="#p1")
    )
    assert any("ref-1" in p for p in problems)


def test_conditional_create_with_put_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: d["entry"][0]["request"].update(method="PUT"))
    assert any("hilum-bdl-2" in p for p in problems)


def test_r5_only_element_is_caught(valid: dict[str, Any]) -> None:
    # DiagnosticReport.note exists only from R5 on.
    problems = _problems_after(valid, lambda d: _resource(d, "DiagnosticReport").update(note=[{"text": "x"}]))
    assert any(p.startswith("structure:") and "note" in p for p in problems)


def test_empty_value_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: _resource(d, "ImagingStudy").update(description=""))
    assert any("ele-1" in p and "description" in p for p in problems)


def test_resource_type_hilum_does_not_emit_is_caught(valid: dict[str, Any]) -> None:
    def add_basic(data: dict[str, Any]) -> None:
        data["entry"].append(
            {
                "fullUrl": "urn:uuid:11111111-1111-5111-8111-111111111111",
                "resource": {"resourceType": "Basic", "code": {"text": "x"}},
                "request": {"method": "POST", "url": "Basic"},
            }
        )

    problems = _problems_after(valid, add_basic)
    assert any("not a resource type Hilum emits" in p for p in problems)


def test_collection_bundle_is_caught(valid: dict[str, Any]) -> None:
    problems = _problems_after(valid, lambda d: d.update(type="collection"))
    assert any("bdl-3" in p for p in problems) and any("hilum-bdl-1" in p for p in problems)


def test_a_built_bundle_is_checked_without_parsing_it_back(
    study: StudyInfo, reported: ReportedFindings, draft: messages_pb2.DraftReport, prior_study: StudyInfo,
    valid: dict[str, Any],
) -> None:
    issued = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
    built = build_report_bundle(study, reported, draft, prior_study=prior_study, issued=issued,
                                patient_identifier_system="urn:oid:1.2.3")
    assert validate_built_bundle(built) == (valid, [])
    # What the models cannot see is still caught: a demo report whose conclusion lost its disclaimer.
    report = next(entry.resource for entry in built.entry if entry.resource.__resource_type__ == "DiagnosticReport")
    report.conclusion = "New right pneumothorax."
    data, problems = validate_built_bundle(built)
    assert _resource(data, "DiagnosticReport")["conclusion"] == "New right pneumothorax."
    assert any("hilum-demo-1" in problem for problem in problems)


def test_contained_resources_are_still_held_to_the_dom_invariants(valid: dict[str, Any]) -> None:
    # The dom-* invariants are evaluated only where a resource has contained resources; there they must bite.
    nested = {"resourceType": "Device", "id": "inner", "contained": [{"resourceType": "Device", "id": "deeper"}],
              "meta": {"versionId": "3"}}
    problems = _problems_after(valid, lambda d: _resource(d, "Observation").update(contained=[nested]))
    assert any("dom-2" in p for p in problems)
    assert any("dom-3" in p for p in problems)  # nothing refers to #inner
    assert any("dom-4" in p for p in problems)
