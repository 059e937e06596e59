"""CDS Hooks 2.0 cards built from a precomputed CdsView: pure functions, no I/O.

Cards follow the specification strictly: summary under 140 characters, indicator info/warning/critical,
a source, a uuid on every card, and no empty strings, lists or nulls once serialised (exclude_none).
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from hilum.common.cds_view import CdsFinding, CdsView
from hilum.common.fhir.identifiers import HILUM_NAMESPACE
from hilum.common.reported_findings import ChangeSincePrior, FindingStatus
from hilum.common.wording import CARD_DEMO_PREFIX, DEMO_WARNING, card_preliminary_note

SUMMARY_MAX = 139  # the specification asks for fewer than 140 characters
SOURCE_LABEL = "Hilum chest X-ray AI"
TOPIC_SYSTEM = "https://hilum.dev/fhir/CodeSystem/cds-topic"
CRITICAL_CODES = frozenset({"pneumothorax"})


class Indicator(StrEnum):
    """Card urgency as CDS Hooks 2.0 defines it."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class CdsCoding(BaseModel):
    """A CDS Hooks Coding (system, code, optional display)."""

    model_config = ConfigDict(frozen=True)

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = Field(default=None, min_length=1)


class Source(BaseModel):
    """Where a card's content comes from: a label shown to the user and an optional topic."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(min_length=1)
    topic: CdsCoding | None = None


class Card(BaseModel):
    """A CDS Hooks 2.0 information card (Hilum's cards carry no suggestions and no links)."""

    model_config = ConfigDict(frozen=True)

    uuid: str = Field(min_length=1)
    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    detail: str | None = Field(default=None, min_length=1)
    indicator: Indicator
    source: Source


def indicator_for(view: CdsView) -> Indicator:
    """critical: a present pneumothorax not known from the prior, or a view flagged critical, from a validated
    model only (demo weights never raise a critical alarm); warning: other present findings; info: none
    present (uncertain and resolved findings alone raise no alarm)."""
    present = [f for f in view.findings if f.status == FindingStatus.PRESENT]
    alarming = view.critical or any(
        f.code in CRITICAL_CODES and f.change != ChangeSincePrior.UNCHANGED for f in present
    )
    if alarming and not view.demo_weights:
        return Indicator.CRITICAL
    return Indicator.WARNING if present or alarming else Indicator.INFO


def card_uuid(view: CdsView) -> str:
    """Stable per DiagnosticReport, so feedback on the card can be traced back to the report."""
    return str(uuid.uuid5(HILUM_NAMESPACE, f"cds-card\x1fpatient-view\x1f{view.diagnostic_report_id}"))


def _finding_phrase(finding: CdsFinding) -> str:
    """ "Pneumothorax (new)" — change shown only when it is news."""
    if finding.change in (ChangeSincePrior.NEW, ChangeSincePrior.RESOLVED):
        return f"{finding.display} ({finding.change.value})"
    return finding.display


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,;:") + "…"


def card_summary(view: CdsView) -> str:
    """One line under 140 characters naming the present and resolved findings; demo output starts with "DEMO"."""
    shown = [f for f in view.findings if f.status in (FindingStatus.PRESENT, FindingStatus.RESOLVED)]
    listed = ", ".join(_finding_phrase(f) for f in shown) or "no findings above threshold"
    text = f"Chest X-ray {view.study_date.isoformat()} (AI, preliminary): {listed}"
    if view.demo_weights:
        text = CARD_DEMO_PREFIX + text
    return _truncate(text, SUMMARY_MAX)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())


def card_detail(view: CdsView) -> str:
    """Markdown: the demo warning, the impression, a table of every reported finding and the algorithm version."""
    lines: list[str] = []
    if view.demo_weights:
        lines += [f"**{DEMO_WARNING}**", ""]
    lines += [card_preliminary_note(view.study_date), ""]
    if view.impression.strip():
        lines += [f"**Impression:** {' '.join(view.impression.split())}", ""]
    if view.findings:
        lines += ["| Finding | Status | Probability | Change since prior |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(f.display)} | {f.status.value} | {f.probability:.0%} | "
            f"{f.change.value if f.change else 'not compared'} |"
            for f in view.findings
        ]
        lines.append("")
    else:
        lines += ["No finding above its operating threshold.", ""]
    lines.append(f"Algorithm: {_cell(view.model_name)} {_cell(view.model_version)}.")
    return "\n".join(lines)


def card_source(view: CdsView) -> Source:
    """The source label; with demo weights it carries the demo warning."""
    label = f"{SOURCE_LABEL} — {DEMO_WARNING}" if view.demo_weights else SOURCE_LABEL
    return Source(
        label=label, topic=CdsCoding(system=TOPIC_SYSTEM, code="cxr-ai-result", display="Chest X-ray AI")
    )


def patient_view_cards(view: CdsView | None) -> list[Card]:
    """The cards for patient-view: one card for the latest study, none when Hilum has no result."""
    if view is None:
        return []
    return [
        Card(
            uuid=card_uuid(view),
            summary=card_summary(view),
            detail=card_detail(view),
            indicator=indicator_for(view),
            source=card_source(view),
        )
    ]
