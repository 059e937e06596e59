"""Draft report wording: traceable sentences, change since prior, and the demo notice."""

from __future__ import annotations

from dataclasses import replace

from hilum.common.reported_findings import Laterality, reported_findings
from hilum.common.wording import DEMO_DETAIL, DEMO_NOTICE, DRAFT_NOTICE
from hilum.reporting.draft import draft_report, impression_text
from hilum.v1 import messages_pb2

S = messages_pb2.FindingState
C = messages_pb2.Change


def _comparison(with_prior: bool, demo: bool = True) -> messages_pb2.PriorComparison:
    current = messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid="1.2.3"),
        model=messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=demo),
        findings=[
            messages_pb2.Finding(code="pneumothorax", display="Pneumothorax", probability=0.91, threshold=0.5,
                                 state=S.FINDING_STATE_PRESENT),
            messages_pb2.Finding(code="effusion", display="Pleural effusion", probability=0.45, threshold=0.5,
                                 state=S.FINDING_STATE_UNCERTAIN),
            messages_pb2.Finding(code="edema", display="Pulmonary edema", probability=0.1, threshold=0.5,
                                 state=S.FINDING_STATE_ABSENT),
        ],
    )
    comparison = messages_pb2.PriorComparison(current=current)
    if with_prior:
        comparison.prior.study_instance_uid = "1.2.2"
        comparison.prior.study_date = "20250301"
        comparison.prior.findings.extend([
            messages_pb2.Finding(code="pneumothorax", display="Pneumothorax", state=S.FINDING_STATE_ABSENT),
            messages_pb2.Finding(code="edema", display="Pulmonary edema", state=S.FINDING_STATE_PRESENT),
            messages_pb2.Finding(code="effusion", display="Pleural effusion", state=S.FINDING_STATE_ABSENT),
        ])
        comparison.changes.extend([
            messages_pb2.FindingChange(code="pneumothorax", change=C.CHANGE_NEW),
            messages_pb2.FindingChange(code="edema", change=C.CHANGE_RESOLVED),
        ])
    return comparison


def _draft(comparison: messages_pb2.PriorComparison) -> messages_pb2.DraftReport:
    return draft_report(reported_findings(comparison))


def _absent_now(comparison: messages_pb2.PriorComparison) -> messages_pb2.PriorComparison:
    for finding in comparison.current.findings:
        finding.state = S.FINDING_STATE_ABSENT
    return comparison


def test_every_finding_sentence_cites_known_codes() -> None:
    draft = _draft(_comparison(with_prior=True))
    codes = {"pneumothorax", "effusion", "edema"}
    cited = [s for s in [*draft.findings, *draft.impression] if s.finding_codes]
    assert cited
    for sentence in cited:
        assert set(sentence.finding_codes) <= codes


def test_one_findings_sentence_per_reported_finding_in_report_order() -> None:
    draft = _draft(_comparison(with_prior=True))
    assert [s.text for s in draft.findings] == [
        "Comparison: chest radiograph of 2025-03-01.",
        "Pneumothorax: suspected (probability 0.91, threshold 0.50), new since the prior study of 2025-03-01.",
        "Pleural effusion: possible (probability 0.45, below threshold 0.50).",
        "Pulmonary edema: seen on the prior study, not seen now.",
    ]
    assert [list(s.finding_codes) for s in draft.findings] == [[], ["pneumothorax"], ["effusion"], ["edema"]]


def test_change_since_prior_is_stated() -> None:
    draft = _draft(_comparison(with_prior=True))
    assert "new since the prior study of 2025-03-01" in draft.text
    assert "Pulmonary edema: seen on the prior study, not seen now." in draft.text
    assert "Suspected: pneumothorax (new)." in draft.text
    assert "Resolved since prior: pulmonary edema." in draft.text
    assert [list(s.finding_codes) for s in draft.impression] == [["pneumothorax"], ["edema"]]


def test_unchanged_finding_is_said_to_be_on_the_prior() -> None:
    comparison = _comparison(with_prior=True)
    comparison.changes[0].change = C.CHANGE_UNCHANGED
    draft = _draft(comparison)
    assert "also present on the prior study of 2025-03-01." in draft.text
    assert "Suspected: pneumothorax." in draft.text


def test_no_prior_is_said_plainly() -> None:
    draft = _draft(_comparison(with_prior=False))
    assert "Comparison: no prior chest radiograph in Hilum." in draft.text
    assert "(new)" not in draft.text
    assert "prior study" not in draft.text


def test_a_prior_without_findings_reports_no_change() -> None:
    comparison = _comparison(with_prior=True)
    del comparison.prior.findings[:]
    draft = _draft(comparison)
    assert draft.findings[0].text == (
        "Comparison: chest radiograph of 2025-03-01 (its findings were not available, so no change is reported)."
    )
    assert "(new)" not in draft.text and "new since" not in draft.text
    assert "Pulmonary edema" not in draft.text  # nothing is resolved without a compared prior


def test_a_malformed_prior_date_is_unknown() -> None:
    comparison = _comparison(with_prior=True)
    comparison.prior.study_date = "2025"
    assert "Comparison: chest radiograph of an unknown date." in _draft(comparison).text


def test_none_reached_threshold_cites_every_assessed_finding() -> None:
    draft = _draft(_absent_now(_comparison(with_prior=False)))
    (last,) = [s for s in draft.findings if s.text.startswith("None of")]
    assert last.text == "None of the 3 assessed findings reached its operating threshold."
    assert list(last.finding_codes) == ["pneumothorax", "effusion", "edema"]
    (impression,) = draft.impression
    assert impression.text == "No finding above its operating threshold."
    assert list(impression.finding_codes) == ["pneumothorax", "effusion", "edema"]


def test_a_known_side_is_named() -> None:
    reported = reported_findings(_comparison(with_prior=False))
    sided = replace(reported, findings=(replace(reported.findings[0], laterality=Laterality.RIGHT),))
    draft = draft_report(sided)
    assert "Pneumothorax (right): suspected" in draft.text
    assert "Suspected: pneumothorax (right)." in draft.text


def test_demo_notice_leads_the_text_only_for_demo_weights() -> None:
    demo = _draft(_comparison(False, demo=True)).text
    assert demo.startswith(f"{DEMO_NOTICE}\n{DEMO_DETAIL}\n")
    assert demo.startswith("DEMO WEIGHTS — NOT FOR CLINICAL USE.")
    validated = _draft(_comparison(False, demo=False)).text
    assert DEMO_NOTICE not in validated
    assert validated.startswith(DRAFT_NOTICE)


def test_draft_names_the_study_and_the_model() -> None:
    draft = _draft(_comparison(with_prior=False))
    assert draft.study_instance_uid == "1.2.3"
    assert (draft.model.name, draft.model.version, draft.model.demo_weights) == (
        "cxr_findings", "demo-untrained", True
    )
    assert "Algorithm: cxr_findings version demo-untrained." in draft.text


def test_impression_text_is_one_paragraph() -> None:
    draft = _draft(_comparison(with_prior=True))
    assert impression_text(draft) == "Suspected: pneumothorax (new). Resolved since prior: pulmonary edema."
