"""Draft report wording: traceable sentences, change since prior, and the demo notice."""

from __future__ import annotations

from hilum.reporting.draft import DEMO_NOTICE, draft_report
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


def test_every_finding_sentence_cites_known_codes() -> None:
    draft = draft_report(_comparison(with_prior=True))
    codes = {"pneumothorax", "effusion", "edema"}
    cited = [s for s in [*draft.findings, *draft.impression] if s.finding_codes]
    assert cited
    for sentence in cited:
        assert set(sentence.finding_codes) <= codes


def test_change_since_prior_is_stated() -> None:
    draft = draft_report(_comparison(with_prior=True))
    assert "new since the prior study of 2025-03-01" in draft.text
    assert "Pulmonary edema: seen on the prior study, not seen now." in draft.text
    assert "Suspected: pneumothorax (new)." in draft.text
    assert "Comparison: chest radiograph of 2025-03-01." in draft.text


def test_no_prior_is_said_plainly() -> None:
    draft = draft_report(_comparison(with_prior=False))
    assert "Comparison: no prior chest radiograph in Hilum." in draft.text
    assert "(new)" not in draft.text


def test_demo_notice_leads_the_text_only_for_demo_weights() -> None:
    assert draft_report(_comparison(False, demo=True)).text.startswith(DEMO_NOTICE)
    assert DEMO_NOTICE not in draft_report(_comparison(False, demo=False)).text
