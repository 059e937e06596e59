"""The preliminary DiagnosticReport."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.diagnostic_report import build_diagnostic_report, exam_code
from hilum.common.reported_findings import reported_findings
from hilum.common.study import StudyInfo
from hilum.common.wording import DEMO_NOTICE, DEMO_WARNING
from hilum.v1 import messages_pb2

ISSUED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def _report(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> dict[str, Any]:
    report = build_diagnostic_report(
        study,
        draft,
        reported_findings(comparison),
        subject=Reference(reference="urn:uuid:patient"),
        imaging_studies=[Reference(reference="urn:uuid:study"), Reference(reference="urn:uuid:prior")],
        results=[Reference(reference="urn:uuid:obs")],
        effective=study.started,
        issued=ISSUED,
    )
    return report.model_dump(mode="json")


@pytest.mark.parametrize(
    ("views", "code"),
    [
        (("PA",), "36554-4"),
        (("PA", "LL"), "36643-5"),
        (("PA", "PA"), "36554-4"),
        (("PA", "LL", "AP"), "30745-4"),
        (("", ""), "36643-5"),
    ],
)
def test_exam_code_follows_the_number_of_views(
    study_factory: Callable[..., StudyInfo], views: tuple[str, ...], code: str
) -> None:
    concept = exam_code(study_factory(views=views))
    assert concept.coding is not None
    assert (concept.coding[0].system, concept.coding[0].code) == ("http://loinc.org", code)


def test_report_shape(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    data = _report(study, comparison, draft)
    assert data["status"] == "preliminary"
    categories = {(c["system"], c["code"]) for c in data["category"][0]["coding"]}
    assert categories == {
        ("http://loinc.org", "LP29684-5"),
        ("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD"),
    }
    assert data["code"]["coding"][0]["code"] == "36643-5"
    assert data["effectiveDateTime"] == "2024-03-05T08:15:00+01:00"
    assert data["issued"] == "2024-03-05T09:30:00Z"
    assert [r["reference"] for r in data["imagingStudy"]] == ["urn:uuid:study", "urn:uuid:prior"]
    assert data["result"] == [{"reference": "urn:uuid:obs"}]
    assert data["identifier"][0] == {
        "system": "urn:ietf:rfc:3986",
        "value": f"urn:hilum:report:{study.study_instance_uid}:demo-untrained",
    }
    assert data["meta"]["security"][0]["code"] == "AIAST"


def test_conclusion_codes_are_the_present_findings_only(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    codes = [c["coding"][0]["code"] for c in _report(study, comparison, draft)["conclusionCode"]]
    assert codes == ["36118008"]  # effusion is uncertain, cardiomegaly resolved (reported, but absent now)


def test_no_present_finding_no_conclusion_codes(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    comparison.current.findings[0].state = messages_pb2.FINDING_STATE_ABSENT
    assert "conclusionCode" not in _report(study, comparison, draft)


def test_identifier_follows_the_reported_model_version(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    comparison.current.model.version = "2.0.0"
    assert _report(study, comparison, draft)["identifier"][0]["value"].endswith(":2.0.0")


def test_demo_conclusion_starts_with_the_disclaimer(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    conclusion = _report(study, comparison, draft)["conclusion"]
    assert conclusion.startswith(DEMO_NOTICE)
    assert conclusion.endswith("New right pneumothorax. Possible small pleural effusion.")


def test_validated_conclusion_is_the_impression(
    study: StudyInfo,
    comparison_factory: Callable[..., messages_pb2.PriorComparison],
    draft_factory: Callable[[messages_pb2.PriorComparison], messages_pb2.DraftReport],
) -> None:
    comparison = comparison_factory(demo=False)
    data = _report(study, comparison, draft_factory(comparison))
    assert data["conclusion"] == "New right pneumothorax. Possible small pleural effusion."
    assert "DEMO" not in data["conclusion"]


def test_presented_form_is_the_full_draft_text(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    (form,) = _report(study, comparison, draft)["presentedForm"]
    assert form["contentType"].startswith("text/plain")
    assert base64.b64decode(form["data"]).decode("utf-8") == draft.text


def test_demo_text_without_disclaimer_gets_one(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    draft.text = "IMPRESSION: New right pneumothorax."
    (form,) = _report(study, comparison, draft)["presentedForm"]
    assert base64.b64decode(form["data"]).decode("utf-8").startswith(DEMO_WARNING)


def test_validated_draft_without_impression_is_refused(
    study: StudyInfo,
    comparison_factory: Callable[..., messages_pb2.PriorComparison],
    draft_factory: Callable[[messages_pb2.PriorComparison], messages_pb2.DraftReport],
) -> None:
    comparison = comparison_factory(demo=False)
    draft = draft_factory(comparison)
    del draft.impression[:]
    with pytest.raises(ValueError, match="no impression"):
        _report(study, comparison, draft)
