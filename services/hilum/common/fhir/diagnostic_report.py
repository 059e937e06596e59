"""DiagnosticReport resource: the preliminary, AI-drafted chest radiograph report for one study."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import date, datetime

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import LOINC, RFC3986, SNOMED, V2_0074, report_identifier_value
from hilum.common.fhir.imaging_study import as_model_date_time
from hilum.common.fhir.observation import AI_ASSERTED
from hilum.common.reported_findings import ReportedFindings
from hilum.common.study import StudyInfo
from hilum.common.wording import DEMO_NOTICE, DEMO_WARNING, amended_notice
from hilum.v1 import messages_pb2

RADIOLOGY_CATEGORY = CodeableConcept(
    coding=[
        Coding(system=LOINC, code="LP29684-5", display="Radiology"),
        Coding(system=V2_0074, code="RAD", display="Radiology"),
    ],
    text="Radiology",
)

# LOINC exam codes (RAD class, verified against the LOINC radiology listing):
# 36554-4 "XR Chest Single view", 36643-5 "XR Chest 2 Views", 30745-4 "XR Chest Views" (any number).
XR_CHEST_SINGLE_VIEW = Coding(system=LOINC, code="36554-4", display="XR Chest Single view")
XR_CHEST_2_VIEWS = Coding(system=LOINC, code="36643-5", display="XR Chest 2 Views")
XR_CHEST_VIEWS = Coding(system=LOINC, code="30745-4", display="XR Chest Views")


def exam_coding(view_positions: Iterable[str]) -> Coding:
    """The LOINC exam code of images with these View Positions: single view, 2 views, or the unspecified-count
    "XR Chest Views"; views are the distinct projections, and each image without one counts as its own."""
    positions = [position.strip().upper() for position in view_positions]
    views = len({position for position in positions if position}) + positions.count("")
    return {1: XR_CHEST_SINGLE_VIEW, 2: XR_CHEST_2_VIEWS}.get(views, XR_CHEST_VIEWS)


def exam_code(study: StudyInfo) -> CodeableConcept:
    """The LOINC exam code of the study's images (exam_coding)."""
    coding = exam_coding(instance.view_position for instance in study.instances)
    return CodeableConcept(coding=[coding], text=coding.display)


def report_identifier(study_instance_uid: str, model_version: str) -> Identifier:
    """The stable identifier "urn:hilum:report:<study uid>:<model version>" (system urn:ietf:rfc:3986)."""
    return Identifier(system=RFC3986, value=report_identifier_value(study_instance_uid, model_version))


def conclusion_text(draft: messages_pb2.DraftReport, *, demo_weights: bool, amends: str | None = None) -> str:
    """The impression sentences joined; with demo weights it starts with the demo disclaimer, and a report that
    supersedes the study's earlier one (amends: that report's model version) says so next."""
    impression = " ".join(s.text.strip() for s in draft.impression if s.text.strip())
    if not impression and not demo_weights:
        raise ValueError(f"draft report for study {draft.study_instance_uid} has no impression")
    parts = [DEMO_NOTICE if demo_weights else "", amended_notice(amends) if amends else "", impression]
    return " ".join(part for part in parts if part)


def presented_text(draft: messages_pb2.DraftReport, *, demo_weights: bool, amends: str | None = None) -> str:
    """The full draft text; a demo draft that somehow lacks the disclaimer gets it as its first line, and an
    amended report's notice comes next (the demo disclaimer always comes first)."""
    lines = draft.text.split("\n")
    if demo_weights and DEMO_WARNING not in draft.text:
        lines.insert(0, DEMO_WARNING)
    if amends:
        lines.insert(1 if demo_weights else 0, amended_notice(amends))
    return "\n".join(lines)


def conclusion_codes(reported: ReportedFindings) -> list[CodeableConcept]:
    """SNOMED CT codes of the reported findings present now (labels without a SNOMED concept are left out)."""
    return [
        CodeableConcept(
            coding=[Coding(system=SNOMED, code=f.snomed_code, display=f.display or None)],
            text=f.display or f.code,
        )
        for f in reported.present
        if f.snomed_code
    ]


def build_diagnostic_report(
    study: StudyInfo,
    draft: messages_pb2.DraftReport,
    reported: ReportedFindings,
    *,
    subject: Reference,
    imaging_studies: list[Reference],
    results: list[Reference],
    effective: datetime | date | None,
    issued: datetime,
    based_on: Reference | None = None,
    presented_html: str = "",
    amends: str | None = None,
) -> DiagnosticReport:
    """Preliminary, AI-asserted radiology DiagnosticReport with conclusion, codes and the draft text.

    `reported` gives the model (identifier version, demo wording) and the conclusion codes; `results`
    are the references to its findings' Observations; `based_on` the order; the draft is presented as
    text/plain and, given `presented_html`, as text/html. `amends`: the model version of the study's earlier
    report that this one supersedes (a reprocessed study); the report is then "amended" and says so first.
    """
    demo = reported.model.demo_weights or draft.model.demo_weights
    text = presented_text(draft, demo_weights=demo, amends=amends)
    return DiagnosticReport(
        basedOn=[based_on] if based_on is not None else None,
        meta=Meta(security=[AI_ASSERTED]),
        identifier=[report_identifier(study.study_instance_uid, reported.model.version)],
        status="amended" if amends else "preliminary",
        category=[RADIOLOGY_CATEGORY],
        code=exam_code(study),
        subject=subject,
        effectiveDateTime=as_model_date_time(effective),
        issued=issued,
        imagingStudy=imaging_studies,
        result=results or None,
        conclusion=conclusion_text(draft, demo_weights=demo, amends=amends),
        conclusionCode=conclusion_codes(reported) or None,
        presentedForm=presented_forms(text, presented_html) or None,
    )


def presented_forms(text: str, html: str) -> list[Attachment]:
    """The draft as text/plain and (when given) text/html attachments, each base64 UTF-8."""
    forms = [("text/plain; charset=utf-8", text), ("text/html; charset=utf-8", html)]
    return [
        Attachment(contentType=content_type, language="en", data=base64.b64encode(content.encode("utf-8")),
                   title="Draft chest radiograph report")
        for content_type, content in forms
        if content
    ]
