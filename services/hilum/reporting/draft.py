"""Draft the preliminary radiology report from the reported findings: faithful by construction.

A pure function of the study's ReportedFindings (common/reported_findings decides what is reported and what
changed since the prior). Every FINDINGS and IMPRESSION sentence is built only from ReportedFinding and
ReportedDevice values and cites the codes it states: each reported finding and device is stated once in FINDINGS
(grouped by region) and at most once in IMPRESSION (ordered by urgency, draft_regions.URGENCY). A normal study's
sentences cite the labels assessed and found absent. EXAMINATION and COMPARISON state no finding and cite none.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date

from hilum.common.dicom.header import FRONTAL_VIEWS, LATERAL_VIEWS
from hilum.common.reported_findings import (
    ChangeSincePrior,
    DeviceChangeSincePrior,
    DevicePosition,
    FindingStatus,
    Laterality,
    PriorReference,
    ReportedDevice,
    ReportedFinding,
    ReportedFindings,
)
from hilum.common.study import StudyInfo
from hilum.common.wording import DEMO_DETAIL, DEMO_NOTICE, DRAFT_NOTICE
from hilum.reporting.draft_regions import (
    NORMAL_IMPRESSION,
    NORMAL_SENTENCE,
    Region,
    device_urgency,
    finding_urgency,
    region_of,
)
from hilum.v1 import messages_pb2

GENERIC_EXAMINATION = "Chest radiograph."
NO_COMPARISON = "None."
HEADINGS = ("EXAMINATION", "COMPARISON", "FINDINGS", "IMPRESSION")
XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"

# DICOM ViewPosition values as the EXAMINATION line names them (every lateral is "lateral"), in that order.
_VIEW_NAMES = {**{view: view for view in FRONTAL_VIEWS}, **dict.fromkeys(LATERAL_VIEWS, "lateral")}
_VIEW_ORDER = (*FRONTAL_VIEWS, "lateral")
_STATUS_ORDER = (FindingStatus.PRESENT, FindingStatus.UNCERTAIN, FindingStatus.RESOLVED)
_REGION_ORDER = tuple(Region)


@dataclass(frozen=True)
class Examination:
    """The examination the report describes.

    views: "PA", "AP", "lateral", frontal first; study_date: None when unknown.
    """

    views: tuple[str, ...]
    study_date: date | None

    @classmethod
    def of(cls, study: StudyInfo) -> Examination:
        """The examination of a stored study: its distinct known views and the date it started."""
        named = {_VIEW_NAMES.get(instance.view_position.strip().upper()) for instance in study.instances}
        return cls(
            views=tuple(view for view in _VIEW_ORDER if view in named),
            study_date=study.started.date() if study.started else None,
        )

    @property
    def text(self) -> str:
        """"Chest radiograph, PA and lateral views, 2025-03-02." (no views or date: left out)."""
        parts = ["Chest radiograph"]
        if self.views:
            noun = "view" if len(self.views) == 1 else "views"
            parts.append(f"{_and_join(list(self.views))} {noun}")
        if self.study_date:
            parts.append(self.study_date.isoformat())
        return ", ".join(parts) + "."


def draft_report(reported: ReportedFindings, examination: Examination | None = None) -> messages_pb2.DraftReport:
    """The draft of one study: EXAMINATION, COMPARISON, FINDINGS and IMPRESSION, and its plain-text rendering.

    examination: the study's views and date; None gives a generic "Chest radiograph.".
    """
    draft = messages_pb2.DraftReport(
        study_instance_uid=reported.study_instance_uid,
        model=reported.model.as_info(),
        findings=_findings_section(reported),
        impression=_impression_section(reported),
        examination=examination.text if examination else GENERIC_EXAMINATION,
        comparison=_comparison_text(reported),
    )
    draft.text = render_text(draft)
    return draft


def _and_join(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_name(display: str) -> str:
    """A display name for mid-sentence use; an acronym ("ARDS") keeps its case."""
    return display if display[:2].isupper() else display[:1].lower() + display[1:]


def _prior_date(prior: PriorReference | None) -> str:
    """The prior's date as YYYY-MM-DD, or "the prior study" when its date is unknown."""
    return prior.study_date.isoformat() if prior and prior.study_date else "the prior study"


def _comparison_text(reported: ReportedFindings) -> str:
    """The COMPARISON section: which prior, and whether change since it is stated."""
    prior = reported.prior
    if prior is None:
        return NO_COMPARISON
    named = f"Chest radiograph of {prior.study_date.isoformat()}" if prior.study_date else (
        "Prior chest radiograph of unknown date"
    )
    if not reported.compared:
        return f"{named}; its findings were not available, so no change is reported."
    if prior.from_report:
        return f"{named}, as its radiology report describes it; change is stated against that report."
    return f"{named}."


def _finding_name(finding: ReportedFinding) -> str:
    """"left pleural effusion": the side when known, then the display name (the code when it has none)."""
    name = _lower_name(finding.display or finding.code)
    return name if finding.laterality == Laterality.UNSPECIFIED else f"{finding.laterality.value} {name}"


def _change_clause(finding: ReportedFinding, prior: PriorReference | None) -> str:
    """", new since 2025-03-01" and the like; "" when the finding was not compared."""
    when = _prior_date(prior)
    if finding.status == FindingStatus.RESOLVED:
        return f", resolved since {when}"
    then = _then_side(finding.prior_laterality)
    if finding.change == ChangeSincePrior.NEW:
        return f", new since {when}{then}"
    if finding.change == ChangeSincePrior.UNCHANGED:
        return f", unchanged from {when}"
    if finding.change == ChangeSincePrior.IMPROVED:
        return f", improved since {when}{then}"
    if finding.change == ChangeSincePrior.WORSENED:
        return f", worsened since {when}{then}"
    return ""


def _then_side(prior_laterality: Laterality | None) -> str:
    """" (on the right then)", " (bilateral then)": the prior's side where the sides changed; "" otherwise."""
    if prior_laterality is None or prior_laterality == Laterality.UNSPECIFIED:
        return ""
    if prior_laterality == Laterality.BILATERAL:
        return " (bilateral then)"
    return f" (on the {prior_laterality.value} then)"


def _finding_text(finding: ReportedFinding, prior: PriorReference | None) -> str:
    """"Left pleural effusion, new since 2025-03-01."; uncertain findings are hedged: "Possible pneumothorax."."""
    name = _finding_name(finding)
    stated = f"possible {name}" if finding.status == FindingStatus.UNCERTAIN else name
    return _capitalised(stated) + _change_clause(finding, prior) + "."


def _tip_phrase(device: ReportedDevice) -> str:
    """" tip 4.5 cm above the carina"; "" when no distance was measured."""
    if device.tip_distance_mm is None or device.landmark is None:
        return ""
    centimetres = f"{abs(device.tip_distance_mm) / 10:.1f}"
    if centimetres == "0.0":
        return f" tip at the {device.landmark}"
    side = "above" if device.tip_distance_mm > 0 else "below"
    return f" tip {centimetres} cm {side} the {device.landmark}"


_POSITION_PHRASE = {
    DevicePosition.SATISFACTORY: "satisfactory position",
    DevicePosition.MALPOSITIONED: "malpositioned",
    DevicePosition.INDETERMINATE: "position indeterminate",
}


def _not_assessed(device: ReportedDevice) -> str:
    """"position not assessed: <why>" for a device with no placement call ("position not assessed" without a why)."""
    reason = device.position_reason.rstrip(".")
    return f"position not assessed: {reason}" if reason else "position not assessed"


def device_text(device: ReportedDevice, prior: PriorReference | None) -> str:
    """"Endotracheal tube tip 4.5 cm above the carina, satisfactory position."; without a placement call,
    "..., position not assessed: placement thresholds are for adults; patient is under 18."; compared with the
    prior's devices, how it changed ("; withdrawn 1.5 cm since 2025-03-01"); a removed device's sentence says so.
    The report's FINDINGS sentence on the device, and the CDS card's."""
    if device.change == DeviceChangeSincePrior.REMOVED:
        return f"{device.display} seen on {_prior_date(prior)} has been removed."
    position = _POSITION_PHRASE[device.position] if device.position_called else _not_assessed(device)
    return f"{device.display}{_tip_phrase(device)}, {position}{_device_change_clause(device, prior)}."


def _device_change_clause(device: ReportedDevice, prior: PriorReference | None) -> str:
    """"; new since 2025-03-01", "; withdrawn 1.5 cm since ..." (tip now further above its landmark; "advanced":
    further below), "; position unchanged from ...", "; also present on ..." (not measured on both); "" when no
    prior's devices were compared."""
    when = _prior_date(prior)
    if device.change == DeviceChangeSincePrior.INSERTED:
        return f"; new since {when}"
    if device.change == DeviceChangeSincePrior.MOVED and device.tip_movement_mm is not None:
        direction = "withdrawn" if device.tip_movement_mm > 0 else "advanced"
        return f"; {direction} {abs(device.tip_movement_mm) / 10:.1f} cm since {when}"
    if device.change == DeviceChangeSincePrior.UNCHANGED:
        return f"; position unchanged from {when}"
    if device.change == DeviceChangeSincePrior.NOT_COMPARED:
        return f"; also present on {when}"
    return ""


def _device_impression_text(device: ReportedDevice, prior: PriorReference | None) -> str:
    """"Malpositioned endotracheal tube, tip 0.5 cm below the carina.", the indeterminate equivalent, or the
    FINDINGS sentence of a device with no placement call."""
    if not device.position_called:
        return device_text(device, prior)
    name = _lower_name(device.display)
    tip = f",{_tip_phrase(device)}" if _tip_phrase(device) else ""
    if device.position == DevicePosition.MALPOSITIONED:
        return f"Malpositioned {name}{tip}."
    return f"Indeterminate position of the {name}{tip}."


def _sentence(text: str, codes: list[str]) -> messages_pb2.ReportSentence:
    return messages_pb2.ReportSentence(text=text, finding_codes=codes)


def _findings_section(reported: ReportedFindings) -> list[messages_pb2.ReportSentence]:
    """Devices and findings, one sentence each, grouped by region; each region with no reported finding adds its
    normal sentence, citing its labels assessed absent (a radiologist states the normal regions of an abnormal
    study too)."""
    stated: list[tuple[Region, messages_pb2.ReportSentence]] = [
        (Region.LINES_AND_TUBES, _sentence(device_text(d, reported.prior), [d.code]))
        for d in (*reported.devices, *reported.removed_devices)
    ]
    stated += [(region_of(f.code), _sentence(_finding_text(f, reported.prior), [f.code])) for f in reported.findings]
    reported_regions = {region_of(f.code) for f in reported.findings}
    absent: dict[Region, list[str]] = {}
    for code in reported.absent_codes:
        if region_of(code) not in reported_regions:
            absent.setdefault(region_of(code), []).append(code)
    stated += [(region, _sentence(NORMAL_SENTENCE[region], codes)) for region, codes in absent.items()]
    stated.sort(key=lambda item: _REGION_ORDER.index(item[0]))  # stable: report order within a region
    return [sentence for _, sentence in stated]


def _is_normal(reported: ReportedFindings) -> bool:
    """Nothing is present or possible now (devices and resolved findings do not make a study abnormal)."""
    return not reported.present and not reported.uncertain


def _impression_section(reported: ReportedFindings) -> list[messages_pb2.ReportSentence]:
    """Findings and misplaced or unclear devices, most urgent first; a normal study ends with its normal sentence."""
    ranked: list[tuple[tuple[int, int, float], messages_pb2.ReportSentence]] = []
    for finding in reported.findings:
        key = (finding_urgency(finding), _STATUS_ORDER.index(finding.status), -finding.probability)
        ranked.append((key, _sentence(_finding_text(finding, reported.prior), [finding.code])))
    for device in reported.devices:
        urgency = device_urgency(device)
        if urgency is not None:
            sentence = _sentence(_device_impression_text(device, reported.prior), [device.code])
            ranked.append(((urgency, 0, -device.probability), sentence))
    ranked.sort(key=lambda item: item[0])
    sentences = [sentence for _, sentence in ranked]
    if _is_normal(reported) and reported.absent_codes:
        sentences.append(_sentence(NORMAL_IMPRESSION, list(reported.absent_codes)))
    return sentences


def _notices(draft: messages_pb2.DraftReport) -> tuple[list[str], list[str]]:
    """The demo notices (none for validated weights) and the preliminary-draft notices."""
    demo = [DEMO_NOTICE, DEMO_DETAIL] if draft.model.demo_weights else []
    return demo, [DRAFT_NOTICE, f"Algorithm: {draft.model.name} version {draft.model.version}."]


def _regions(draft: messages_pb2.DraftReport) -> list[tuple[Region, list[str]]]:
    """The FINDINGS sentences grouped by the region of the first code each cites, keeping their order."""
    groups: list[tuple[Region, list[str]]] = []
    for sentence in draft.findings:
        region = region_of(sentence.finding_codes[0] if sentence.finding_codes else "")
        if groups and groups[-1][0] == region:
            groups[-1][1].append(sentence.text)
        else:
            groups.append((region, [sentence.text]))
    return groups


def render_text(draft: messages_pb2.DraftReport) -> str:
    """The plain-text report: notices, then the EXAMINATION, COMPARISON, FINDINGS and IMPRESSION sections."""
    demo, preliminary = _notices(draft)
    lines = [*demo, *([""] if demo else []), *preliminary, ""]
    lines += ["EXAMINATION:", draft.examination or GENERIC_EXAMINATION, ""]
    lines += ["COMPARISON:", draft.comparison or NO_COMPARISON, ""]
    lines += ["FINDINGS:", *(f"{region.value}: {' '.join(texts)}" for region, texts in _regions(draft)), ""]
    lines += ["IMPRESSION:", *(f"{n}. {s.text}" for n, s in enumerate(draft.impression, start=1))]
    return "\n".join(lines) + "\n"


def render_html(draft: messages_pb2.DraftReport) -> str:
    """The same report as an escaped XHTML fragment, valid as FHIR narrative and as text/html presentedForm."""
    demo, preliminary = _notices(draft)
    parts = [f'<div xmlns="{XHTML_NAMESPACE}">']
    parts += [f"<p><b>{html.escape(line)}</b></p>" for line in demo]
    parts += [f"<p>{html.escape(line)}</p>" for line in preliminary]
    parts += ["<h3>EXAMINATION</h3>", f"<p>{html.escape(draft.examination or GENERIC_EXAMINATION)}</p>"]
    parts += ["<h3>COMPARISON</h3>", f"<p>{html.escape(draft.comparison or NO_COMPARISON)}</p>"]
    parts.append("<h3>FINDINGS</h3>")
    parts += [f"<p><b>{html.escape(region.value)}:</b> {html.escape(' '.join(texts))}</p>"
              for region, texts in _regions(draft)]
    parts.append("<h3>IMPRESSION</h3>")
    if draft.impression:
        parts += ["<ol>", *(f"<li>{html.escape(s.text)}</li>" for s in draft.impression), "</ol>"]
    parts.append("</div>")
    return "".join(parts)


def impression_text(draft: messages_pb2.DraftReport) -> str:
    """The impression as one paragraph (the DiagnosticReport conclusion adds the demo notice itself)."""
    return " ".join(s.text for s in draft.impression)
