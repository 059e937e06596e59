"""CDS Hooks cards built from a precomputed CdsView: pure functions, no I/O.

What every hook's card shares lives here: the urgency rule, the summary and Markdown detail, the source,
the declared override reasons, the SMART link to Hilum's review page and the follow-up chest CT
suggestion. The patient-view card is built here too; the order and discharge cards build on these parts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from hilum.cds.card_schema import (
    SUMMARY_MAX,
    Action,
    ActionType,
    Card,
    CdsCoding,
    Indicator,
    Link,
    LinkType,
    SelectionBehavior,
    Source,
    Suggestion,
)
from hilum.cds.services import Hook
from hilum.common.cds_view import CdsDevice, CdsFinding, CdsView
from hilum.common.fhir.identifiers import resource_uuid
from hilum.common.reported_findings import ChangeSincePrior, DevicePosition, FindingStatus
from hilum.common.wording import CARD_DEMO_PREFIX, DEMO_WARNING, amended_notice, card_preliminary_note

SOURCE_LABEL = "Hilum chest X-ray AI"
TOPIC_SYSTEM = "https://hilum.dev/fhir/CodeSystem/cds-topic"
OVERRIDE_REASON_SYSTEM = "https://hilum.dev/fhir/CodeSystem/cds-override-reason"
CRITICAL_CODES = frozenset({"pneumothorax"})
FOLLOW_UP_CT_CODES = frozenset({"nodule", "mass"})
# Changes that say the prior already showed the finding at least as it is now: no alarm, no new suggestion.
KNOWN_BEFORE = frozenset({ChangeSincePrior.UNCHANGED, ChangeSincePrior.IMPROVED})
REVIEW_LAUNCH_PATH = "/review/launch"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
IMAGING_CATEGORY = CdsCoding(system=SNOMED, code="363679005", display="Imaging")
CHEST_CT = CdsCoding(system=LOINC, code="24627-2", display="Chest CT")

# Declared on every card; an override with one of these (or a comment) is what acknowledges a card.
OVERRIDE_REASONS = (
    CdsCoding(system=OVERRIDE_REASON_SYSTEM, code="acknowledged", display="Seen; already known or being managed"),
    CdsCoding(system=OVERRIDE_REASON_SYSTEM, code="ai-incorrect", display="AI finding is incorrect"),
    CdsCoding(system=OVERRIDE_REASON_SYSTEM, code="not-relevant", display="Not relevant to this patient now"),
)


@dataclass(frozen=True)
class CardContext:
    """What cards need from the call: the EHR's Patient id (and encounter), and the URL the EHR calls Hilum at."""

    patient_id: str
    encounter_id: str | None
    public_url: str


def alarming(view: CdsView) -> bool:
    """A critical finding that needs acknowledging: a present pneumothorax not already on the prior, a malpositioned
    tube or line, or a view flagged critical. Demo weights included: whether it is shown as critical is
    indicator_for's rule."""
    return view.critical or bool(alarming_findings(view)) or bool(alarming_devices(view))


def alarming_devices(view: CdsView) -> list[CdsDevice]:
    """The tubes and lines called malpositioned."""
    return [d for d in view.devices if d.position == DevicePosition.MALPOSITIONED]


def alarming_phrases(view: CdsView) -> list[str]:
    """What makes the view alarming, named: "Endotracheal tube malpositioned", "Pneumothorax (new)"."""
    return [device_phrase(d) for d in alarming_devices(view)] + [finding_phrase(f) for f in alarming_findings(view)]


def alarming_findings(view: CdsView) -> list[CdsFinding]:
    """The present critical-code findings that are not unchanged or improved since the prior."""
    return [
        f for f in view.findings
        if f.status == FindingStatus.PRESENT and f.code in CRITICAL_CODES and f.change not in KNOWN_BEFORE
    ]


def indicator_for(view: CdsView) -> Indicator:
    """critical: alarming, from a validated model only (demo weights never raise a critical alarm); warning:
    other present findings (or an alarm from demo weights); info: none present (uncertain and resolved findings,
    and tubes and lines in a satisfactory position, raise no alarm)."""
    present = [f for f in view.findings if f.status == FindingStatus.PRESENT]
    if alarming(view) and not view.demo_weights:
        return Indicator.CRITICAL
    return Indicator.WARNING if present or alarming(view) else Indicator.INFO


def card_uuid(view: CdsView, hook: Hook) -> str:
    """Stable per hook and DiagnosticReport, so feedback on the card can be traced back to the report."""
    return resource_uuid("cds-card", hook.value, view.diagnostic_report_id)


def card_uuids(view: CdsView) -> list[str]:
    """The uuid every hook's card for this view has."""
    return [card_uuid(view, hook) for hook in Hook]


def finding_phrase(finding: CdsFinding) -> str:
    """ "Pneumothorax (new)" — change shown only when it is news."""
    if finding.change in (ChangeSincePrior.NEW, ChangeSincePrior.WORSENED, ChangeSincePrior.RESOLVED):
        return f"{finding.display} ({finding.change.value})"
    return finding.display


def device_phrase(device: CdsDevice) -> str:
    """ "Endotracheal tube malpositioned" for a malpositioned device, else its name."""
    return f"{device.display} malpositioned" if device.position == DevicePosition.MALPOSITIONED else device.display


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,;:") + "…"


def summary_line(view: CdsView, text: str) -> str:
    """`text` as a card summary: under 140 characters, opening with the demo prefix for demo weights."""
    return _truncate(CARD_DEMO_PREFIX + text if view.demo_weights else text, SUMMARY_MAX)


def card_summary(view: CdsView, lead: str = "Chest X-ray") -> str:
    """One line naming the malpositioned tubes and lines, then the present and resolved findings, after `lead` and the
    study date; demo output starts with "DEMO"."""
    shown = [f for f in view.findings if f.status in (FindingStatus.PRESENT, FindingStatus.RESOLVED)]
    named = [device_phrase(d) for d in alarming_devices(view)] + [finding_phrase(f) for f in shown]
    listed = ", ".join(named) or "no findings above threshold"
    return summary_line(view, f"{lead} {view.study_date.isoformat()} (AI, preliminary): {listed}")


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())


def card_detail(view: CdsView) -> str:
    """Markdown: the demo warning, the amendment (a reprocessed study), the impression, the prior compared, a table
    of every reported finding, the tubes and lines, and the algorithm version."""
    lines: list[str] = []
    if view.demo_weights:
        lines += [f"**{DEMO_WARNING}**", ""]
    lines += [card_preliminary_note(view.study_date), ""]
    if view.amends_model_version:
        lines += [f"**{cell(amended_notice(view.amends_model_version))}**", ""]
    if view.impression.strip():
        lines += [f"**Impression:** {' '.join(view.impression.split())}", ""]
    compared = (f"Compared with the prior study of {view.prior_study_date.isoformat()}."
                if view.prior_study_date else "No prior study was compared.")
    lines += [compared, ""]
    if view.findings:
        lines += ["| Finding | Status | Probability | Change since prior |", "|---|---|---|---|"]
        lines += [
            f"| {cell(f.display)} | {f.status.value} | {f.probability:.0%} | "
            f"{f.change.value if f.change else 'not compared'} |"
            for f in view.findings
        ]
        lines.append("")
    else:
        lines += ["No finding above its operating threshold.", ""]
    if view.devices:
        lines += ["**Tubes and lines:**", *(f"- {' '.join(d.text.split())}" for d in view.devices), ""]
    lines.append(f"Algorithm: {cell(view.model_name)} {cell(view.model_version)}.")
    return "\n".join(lines)


def card_source(view: CdsView) -> Source:
    """The source label; with demo weights it carries the demo warning."""
    label = f"{SOURCE_LABEL} — {DEMO_WARNING}" if view.demo_weights else SOURCE_LABEL
    return Source(
        label=label, topic=CdsCoding(system=TOPIC_SYSTEM, code="cxr-ai-result", display="Chest X-ray AI")
    )


def review_link(view: CdsView, context: CardContext) -> Link:
    """A SMART link to Hilum's review page for the report (the page is a placeholder until it exists)."""
    return Link(label="Review in Hilum", url=f"{context.public_url.rstrip('/')}{REVIEW_LAUNCH_PATH}",
                type=LinkType.SMART, appContext=json.dumps({"diagnosticReport": view.diagnostic_report_id}))


def follow_up_findings(view: CdsView) -> list[CdsFinding]:
    """Present nodules or masses that the prior did not already show as they are now (or larger): what a chest CT
    would characterise."""
    return [
        f for f in view.findings
        if f.status == FindingStatus.PRESENT and f.code in FOLLOW_UP_CT_CODES and f.change not in KNOWN_BEFORE
    ]


def chest_ct_suggestion(view: CdsView, context: CardContext, card_id: str) -> Suggestion | None:
    """A suggestion to order a chest CT (a draft ServiceRequest the EHR may create) for a new nodule or mass;
    None when there is none. From demo weights it is labelled demo output and never recommended."""
    findings = follow_up_findings(view)
    if not findings:
        return None
    named = ", ".join(finding_phrase(f) for f in findings)
    reason = f"{named} on chest X-ray of {view.study_date.isoformat()} (AI, preliminary, not reviewed)"
    if view.demo_weights:
        reason = f"{CARD_DEMO_PREFIX}{reason}"
    order = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [IMAGING_CATEGORY.model_dump(exclude_none=True)]}],
        "code": {"coding": [CHEST_CT.model_dump(exclude_none=True)], "text": "CT chest"},
        "subject": {"reference": f"Patient/{context.patient_id}"},
        "reasonCode": [{"text": reason}],
        **({"encounter": {"reference": f"Encounter/{context.encounter_id}"}} if context.encounter_id else {}),
    }
    label = f"Order a chest CT to characterise: {named}"
    return Suggestion(
        label=summary_line(view, label), uuid=resource_uuid("cds-suggestion", card_id, "chest-ct"),
        isRecommended=not view.demo_weights,
        actions=(Action(type=ActionType.CREATE, description="Add a draft chest CT order", resource=order),),
    )


def build_card(view: CdsView, context: CardContext, hook: Hook, *, summary: str, detail: str,
               indicator: Indicator, suggestions: Iterable[Suggestion | None] = ()) -> Card:
    """A card with what every Hilum card carries: uuid, source, override reasons and the review link."""
    offered = tuple(s for s in suggestions if s is not None)
    return Card(
        uuid=card_uuid(view, hook), summary=summary, detail=detail, indicator=indicator, source=card_source(view),
        suggestions=offered or None, selectionBehavior=SelectionBehavior.AT_MOST_ONE if offered else None,
        overrideReasons=OVERRIDE_REASONS, links=(review_link(view, context),),
    )


def patient_view_cards(view: CdsView | None, context: CardContext) -> list[Card]:
    """The cards for patient-view: one card for the latest study, none when Hilum has no result."""
    if view is None:
        return []
    card_id = card_uuid(view, Hook.PATIENT_VIEW)
    return [build_card(view, context, Hook.PATIENT_VIEW, summary=card_summary(view), detail=card_detail(view),
                       indicator=indicator_for(view),
                       suggestions=[chest_ct_suggestion(view, context, card_id)])]
