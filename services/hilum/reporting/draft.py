"""Draft report text from the reported findings: every sentence cites the findings it states.

Pure function of the study's ReportedFindings (common/reported_findings decides what is reported and
what changed since the prior); the wording is deliberately plain and hedged, because a radiologist
reviews it and an algorithm's draft must never read as a signed report.
"""

from __future__ import annotations

from hilum.common.reported_findings import (
    ChangeSincePrior,
    FindingStatus,
    PriorReference,
    ReportedFinding,
    ReportedFindings,
)
from hilum.common.wording import DEMO_DETAIL, DEMO_NOTICE, DRAFT_NOTICE
from hilum.v1 import messages_pb2


def _prior_date(prior: PriorReference) -> str:
    """The prior's study date as YYYY-MM-DD, or "an unknown date"."""
    return prior.study_date.isoformat() if prior.study_date else "an unknown date"


def _comparison_sentence(reported: ReportedFindings) -> messages_pb2.ReportSentence:
    """Which prior the findings were compared with, and whether change since it is reported."""
    if reported.prior is None:
        return messages_pb2.ReportSentence(text="Comparison: no prior chest radiograph in Hilum.")
    compared = "" if reported.compared else " (its findings were not available, so no change is reported)"
    return messages_pb2.ReportSentence(
        text=f"Comparison: chest radiograph of {_prior_date(reported.prior)}{compared}."
    )


def _change_clause(finding: ReportedFinding, prior: PriorReference | None) -> str:
    """", new since the prior study of <date>" and the like; "" when no change is stated."""
    if prior is None:
        return ""
    if finding.change == ChangeSincePrior.NEW:
        return f", new since the prior study of {_prior_date(prior)}"
    if finding.change == ChangeSincePrior.UNCHANGED:
        return f", also present on the prior study of {_prior_date(prior)}"
    return ""


def _finding_sentence(finding: ReportedFinding, prior: PriorReference | None) -> messages_pb2.ReportSentence:
    """The FINDINGS sentence of one reported finding, citing its code."""
    probability, threshold = f"{finding.probability:.2f}", f"{finding.threshold:.2f}"
    if finding.status == FindingStatus.PRESENT:
        clause = _change_clause(finding, prior)
        text = f"{finding.label}: suspected (probability {probability}, threshold {threshold}){clause}."
    elif finding.status == FindingStatus.UNCERTAIN:
        text = f"{finding.label}: possible (probability {probability}, below threshold {threshold})."
    else:
        text = f"{finding.label}: seen on the prior study, not seen now."
    return messages_pb2.ReportSentence(text=text, finding_codes=[finding.code])


def _impression(reported: ReportedFindings) -> list[messages_pb2.ReportSentence]:
    """Suspected findings (new ones marked), or that none reached threshold; then what resolved."""
    present, resolved = reported.present, reported.resolved
    if present:
        names = "; ".join(
            f.label.lower() + (" (new)" if f.change == ChangeSincePrior.NEW else "") for f in present
        )
        sentences = [messages_pb2.ReportSentence(text=f"Suspected: {names}.", finding_codes=[f.code for f in present])]
    else:
        sentences = [messages_pb2.ReportSentence(
            text="No finding above its operating threshold.", finding_codes=reported.assessed_codes
        )]
    if resolved:
        sentences.append(messages_pb2.ReportSentence(
            text="Resolved since prior: " + "; ".join(f.label.lower() for f in resolved) + ".",
            finding_codes=[f.code for f in resolved],
        ))
    return sentences


def draft_report(reported: ReportedFindings) -> messages_pb2.DraftReport:
    """The draft: findings sentences, impression sentences, and the plain-text rendering."""
    findings = [_comparison_sentence(reported)]
    findings += [_finding_sentence(f, reported.prior) for f in reported.findings]
    if not reported.present and not reported.uncertain:
        findings.append(messages_pb2.ReportSentence(
            text=f"None of the {len(reported.assessed_codes)} assessed findings reached its operating threshold.",
            finding_codes=reported.assessed_codes,
        ))
    draft = messages_pb2.DraftReport(
        study_instance_uid=reported.study_instance_uid,
        model=reported.model.as_info(),
        findings=findings,
        impression=_impression(reported),
    )
    draft.text = render_text(draft)
    return draft


def render_text(draft: messages_pb2.DraftReport) -> str:
    """The plain-text report: notices first, then FINDINGS and IMPRESSION."""
    lines = []
    if draft.model.demo_weights:
        lines += [DEMO_NOTICE, DEMO_DETAIL, ""]
    lines += [
        DRAFT_NOTICE,
        f"Algorithm: {draft.model.name} version {draft.model.version}.",
        "",
        "FINDINGS:",
        *(s.text for s in draft.findings),
        "",
        "IMPRESSION:",
        *(s.text for s in draft.impression),
    ]
    return "\n".join(lines) + "\n"


def impression_text(draft: messages_pb2.DraftReport) -> str:
    """The impression as one paragraph (the DiagnosticReport conclusion adds the demo notice itself)."""
    return " ".join(s.text for s in draft.impression)
