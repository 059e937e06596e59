"""Draft report wording and layout: sections, change since prior, devices, hedging, and the text/HTML renderings."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, datetime

import pytest

from hilum.common.reported_findings import Laterality, reported_findings
from hilum.common.study import InstanceInfo, PatientInfo, StudyInfo
from hilum.common.wording import DEMO_DETAIL, DEMO_NOTICE, DRAFT_NOTICE
from hilum.reporting.draft import Examination, draft_report, impression_text, render_html, render_text
from hilum.v1 import messages_pb2

S = messages_pb2.FindingState
C = messages_pb2.Change
XHTML = "{http://www.w3.org/1999/xhtml}"
# Elements FHIR R4 narrative allows that the drafter may use (no scripts, forms or attributes).
FHIR_NARRATIVE_ELEMENTS = {"div", "p", "b", "h3", "ol", "li"}


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


def _instance(view: str) -> InstanceInfo:
    return InstanceInfo(sop_instance_uid=f"1.2.3.{view or 'x'}", sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
                        series_instance_uid="1.2.3.1", series_number=1, instance_number=1, modality="DX",
                        view_position=view, rows=64, columns=64, pixel_spacing_mm=(0.139, 0.139))


def _study(*views: str, started: datetime | None = datetime(2025, 3, 2, 10, 5)) -> StudyInfo:
    patient = PatientInfo(patient_id="P7", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
    return StudyInfo(study_instance_uid="1.2.3", patient=patient, started=started, accession_number="A1",
                     description="XR CHEST", instances=tuple(_instance(v) for v in views))


def test_findings_are_grouped_by_region_each_citing_its_code() -> None:
    draft = _draft(_comparison(with_prior=True))
    assert [(s.text, list(s.finding_codes)) for s in draft.findings] == [
        ("Pulmonary edema, resolved since 2025-03-01.", ["edema"]),
        ("Pneumothorax, new since 2025-03-01.", ["pneumothorax"]),
        ("Possible pleural effusion.", ["effusion"]),
    ]
    assert "Lungs: Pulmonary edema, resolved since 2025-03-01.\n" in draft.text
    assert "Pleura: Pneumothorax, new since 2025-03-01. Possible pleural effusion.\n" in draft.text


def test_impression_is_ordered_by_urgency_with_resolved_last() -> None:
    draft = _draft(_comparison(with_prior=True))
    assert [(s.text, list(s.finding_codes)) for s in draft.impression] == [
        ("Pneumothorax, new since 2025-03-01.", ["pneumothorax"]),
        ("Possible pleural effusion.", ["effusion"]),
        ("Pulmonary edema, resolved since 2025-03-01.", ["edema"]),
    ]
    assert "IMPRESSION:\n1. Pneumothorax, new since 2025-03-01.\n2. Possible pleural effusion.\n" in draft.text


def test_unchanged_finding_names_the_prior_date() -> None:
    comparison = _comparison(with_prior=True)
    comparison.changes[0].change = C.CHANGE_UNCHANGED
    assert "Pneumothorax, unchanged from 2025-03-01." in _draft(comparison).text


def test_a_prior_with_a_malformed_date_is_named_without_one() -> None:
    comparison = _comparison(with_prior=True)
    comparison.prior.study_date = "2025"
    draft = _draft(comparison)
    assert draft.comparison == "Prior chest radiograph of unknown date."
    assert "Pneumothorax, new since the prior study." in draft.text


def test_no_prior_gives_comparison_none_and_no_change_language() -> None:
    draft = _draft(_comparison(with_prior=False))
    assert draft.comparison == "None."
    assert "COMPARISON:\nNone.\n" in draft.text
    assert not any(word in draft.text for word in ("new since", "unchanged from", "resolved since"))


def test_a_prior_without_findings_reports_no_change() -> None:
    comparison = _comparison(with_prior=True)
    del comparison.prior.findings[:]
    draft = _draft(comparison)
    assert draft.comparison == (
        "Chest radiograph of 2025-03-01; its findings were not available, so no change is reported."
    )
    assert "new since" not in draft.text
    assert "edema" not in draft.text.lower()  # nothing is resolved without a compared prior


def test_a_normal_study_gets_a_concise_normal_report_citing_the_absent_labels() -> None:
    draft = _draft(_absent_now(_comparison(with_prior=False)))
    assert [(s.text, list(s.finding_codes)) for s in draft.findings] == [
        ("The lungs are clear.", ["edema"]),
        ("No pleural effusion or pneumothorax.", ["pneumothorax", "effusion"]),
    ]
    assert [(s.text, list(s.finding_codes)) for s in draft.impression] == [
        ("No acute cardiopulmonary abnormality.", ["pneumothorax", "effusion", "edema"]),
    ]


def test_a_study_with_nothing_assessed_states_nothing() -> None:
    comparison = _comparison(with_prior=False)
    del comparison.current.findings[:]
    draft = _draft(comparison)
    assert (list(draft.findings), list(draft.impression)) == ([], [])
    assert "FINDINGS:\n\nIMPRESSION:\n" in draft.text


def test_a_known_side_is_named() -> None:
    reported = reported_findings(_comparison(with_prior=False))
    sided = replace(reported, findings=(replace(reported.findings[1], laterality=Laterality.LEFT),))
    assert "Possible left pleural effusion." in draft_report(sided).text


def test_devices_are_stated_with_tip_distances_in_centimetres() -> None:
    comparison = _comparison(with_prior=False)
    comparison.current.devices.extend([
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9,
                                   position=messages_pb2.DEVICE_POSITION_SATISFACTORY, tip_distance_mm=45.0),
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_NG_TUBE, probability=0.8,
                                   position=messages_pb2.DEVICE_POSITION_MALPOSITIONED, tip_distance_mm=12.0),
    ])
    draft = _draft(comparison)
    assert [(s.text, list(s.finding_codes)) for s in draft.findings[:2]] == [
        ("Endotracheal tube tip 4.5 cm above the carina, satisfactory position.", ["device:ett"]),
        ("Nasogastric tube tip 1.2 cm above the gastroesophageal junction, malpositioned.", ["device:ng_tube"]),
    ]
    assert "Lines and tubes: Endotracheal tube tip 4.5 cm above the carina, satisfactory position." in draft.text
    assert [s.text for s in draft.impression] == [
        "Pneumothorax.",
        "Malpositioned nasogastric tube, tip 1.2 cm above the gastroesophageal junction.",
        "Possible pleural effusion.",
    ]
    assert "device:ett" not in [c for s in draft.impression for c in s.finding_codes]  # satisfactory: not urgent


def test_a_device_without_a_placement_call_says_why_and_states_only_a_measured_distance() -> None:
    comparison = _comparison(with_prior=False)
    comparison.current.devices.extend([
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9, tip_distance_mm=21.0,
                                   landmark="carina",
                                   position_reason="placement thresholds are for adults; patient is under 18."),
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_PICC, probability=0.8,
                                   landmark="cavoatrial junction",
                                   measurement="distance not measurable: no pixel spacing",
                                   position=messages_pb2.DEVICE_POSITION_INDETERMINATE, position_called=True),
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_CHEST_TUBE, probability=0.7),
    ])
    draft = _draft(comparison)
    assert [s.text for s in draft.findings[:3]] == [
        "Endotracheal tube tip 2.1 cm above the carina, position not assessed: placement thresholds are for adults; "
        "patient is under 18.",
        "Peripherally inserted central catheter, position indeterminate.",
        "Chest tube, position not assessed.",
    ]
    assert [s.text for s in draft.impression] == [
        "Pneumothorax.",
        "Endotracheal tube tip 2.1 cm above the carina, position not assessed: placement thresholds are for adults; "
        "patient is under 18.",
        "Indeterminate position of the peripherally inserted central catheter.",
        "Chest tube, position not assessed.",
        "Possible pleural effusion.",
    ]


def test_examination_names_views_and_date() -> None:
    assert Examination.of(_study("PA", "LL")).text == "Chest radiograph, PA and lateral views, 2025-03-02."
    assert Examination.of(_study("ap")).text == "Chest radiograph, AP view, 2025-03-02."
    assert Examination.of(_study("LATERAL", "AP", "PA", "RL")).views == ("PA", "AP", "lateral")
    assert Examination.of(_study("AP", "LAT")).views == ("AP", "lateral")  # LAT is a lateral, as ingestion says
    assert Examination.of(_study("PA", "AP", "LL")).text == "Chest radiograph, PA, AP and lateral views, 2025-03-02."
    assert Examination.of(_study("", started=None)).text == "Chest radiograph."
    assert Examination(views=(), study_date=date(2025, 3, 2)).text == "Chest radiograph, 2025-03-02."


def test_draft_carries_the_examination_or_a_generic_one() -> None:
    reported = reported_findings(_comparison(with_prior=False))
    assert draft_report(reported).examination == "Chest radiograph."
    draft = draft_report(reported, Examination.of(_study("PA", "LL")))
    assert draft.examination == "Chest radiograph, PA and lateral views, 2025-03-02."
    assert "EXAMINATION:\nChest radiograph, PA and lateral views, 2025-03-02.\n" in draft.text


def test_text_sections_come_in_order_after_the_notices() -> None:
    text = _draft(_comparison(with_prior=True)).text
    positions = [text.index(f"\n{heading}:\n") for heading in ("EXAMINATION", "COMPARISON", "FINDINGS", "IMPRESSION")]
    assert positions == sorted(positions)
    assert text.index(DRAFT_NOTICE) < positions[0]


def test_demo_notice_leads_the_text_only_for_demo_weights() -> None:
    demo = _draft(_comparison(False, demo=True)).text
    assert demo.startswith(f"{DEMO_NOTICE}\n{DEMO_DETAIL}\n")
    assert demo.startswith("DEMO WEIGHTS — NOT FOR CLINICAL USE.")
    validated = _draft(_comparison(False, demo=False)).text
    assert DEMO_NOTICE not in validated and DEMO_DETAIL not in validated
    assert validated.startswith(DRAFT_NOTICE)


def test_draft_names_the_study_and_the_model() -> None:
    draft = _draft(_comparison(with_prior=False))
    assert draft.study_instance_uid == "1.2.3"
    assert (draft.model.name, draft.model.version, draft.model.demo_weights) == (
        "cxr_findings", "demo-untrained", True
    )
    assert "Algorithm: cxr_findings version demo-untrained." in draft.text


def test_render_text_of_a_draft_is_its_text() -> None:
    draft = _draft(_comparison(with_prior=True))
    assert render_text(draft) == draft.text


def test_impression_text_is_one_paragraph() -> None:
    draft = _draft(_comparison(with_prior=True))
    assert impression_text(draft) == (
        "Pneumothorax, new since 2025-03-01. Possible pleural effusion. Pulmonary edema, resolved since 2025-03-01."
    )


def _parsed(fragment: str) -> ET.Element:
    root = ET.fromstring(fragment)
    assert root.tag == f"{XHTML}div"
    for element in root.iter():
        assert element.tag.removeprefix(XHTML) in FHIR_NARRATIVE_ELEMENTS
        assert not element.attrib
    return root


@pytest.mark.parametrize("demo", [True, False])
def test_html_has_the_same_content_and_headings(demo: bool) -> None:
    draft = _draft(_comparison(with_prior=True, demo=demo))
    root = _parsed(render_html(draft))
    assert [h.text for h in root.iter(f"{XHTML}h3")] == ["EXAMINATION", "COMPARISON", "FINDINGS", "IMPRESSION"]
    assert [li.text for li in root.iter(f"{XHTML}li")] == [s.text for s in draft.impression]
    text = "".join(root.itertext())
    assert (DEMO_NOTICE in text) is demo and (DEMO_DETAIL in text) is demo
    assert DRAFT_NOTICE in text
    assert all(s.text in text for s in draft.findings)
    assert "Pleura:" in text and draft.comparison in text


def test_html_escapes_what_the_model_names() -> None:
    reported = reported_findings(_comparison(with_prior=False))
    odd = replace(reported, findings=(replace(reported.findings[0], display="<b>Pneumothorax</b> & \"more\""),))
    fragment = render_html(draft_report(odd))
    root = _parsed(fragment)
    assert "&lt;b&gt;Pneumothorax&lt;/b&gt; &amp; &quot;more&quot;" in fragment
    assert '<b>Pneumothorax</b> & "more".' in "".join(root.itertext())


def test_tubes_and_lines_say_how_they_changed_since_the_prior() -> None:
    comparison = _comparison(with_prior=True, demo=False)
    ett = messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9, tip_distance_mm=35.0,
                                     landmark="carina", position=messages_pb2.DEVICE_POSITION_SATISFACTORY,
                                     position_called=True)
    comparison.current.devices.extend([
        ett,
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_CHEST_TUBE, probability=0.7,
                                   position_reason="no sourced placement rule"),
    ])
    comparison.prior.devices.extend([
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9, tip_distance_mm=50.0,
                                   landmark="carina"),
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_NG_TUBE, probability=0.8),
    ])
    comparison.device_changes.extend([
        messages_pb2.DeviceComparison(kind=messages_pb2.DEVICE_KIND_ETT, number=1,
                                      change=messages_pb2.DEVICE_CHANGE_MOVED, tip_movement_mm=-15.0,
                                      landmark="carina"),
        messages_pb2.DeviceComparison(kind=messages_pb2.DEVICE_KIND_NG_TUBE, number=1,
                                      change=messages_pb2.DEVICE_CHANGE_REMOVED),
        messages_pb2.DeviceComparison(kind=messages_pb2.DEVICE_KIND_CHEST_TUBE, number=1,
                                      change=messages_pb2.DEVICE_CHANGE_INSERTED),
    ])
    sentences = [s.text for s in _draft(comparison).findings]
    assert "Endotracheal tube tip 3.5 cm above the carina, satisfactory position; advanced 1.5 cm since 2025-03-01." \
        in sentences
    assert any(s.startswith("Chest tube, position not assessed: no sourced placement rule; new since 2025-03-01")
               for s in sentences)
    assert "Nasogastric tube seen on 2025-03-01 has been removed." in sentences
    reported = reported_findings(comparison)
    assert [(d.code, d.change, d.tip_movement_mm) for d in reported.devices] == [
        ("device:ett", "moved", -15.0), ("device:chest_tube", "inserted", None)]
    assert [d.code for d in reported.removed_devices] == ["device:ng_tube"]

    # Without a compared prior's devices, nothing is said about change.
    comparison.ClearField("device_changes")
    assert "Endotracheal tube tip 3.5 cm above the carina, satisfactory position." in [
        s.text for s in _draft(comparison).findings]


def test_an_abnormal_study_states_its_normal_regions_too() -> None:
    comparison = _comparison(with_prior=False, demo=False)
    comparison.current.findings.append(messages_pb2.Finding(
        code="cardiomegaly", display="Cardiomegaly", probability=0.1, threshold=0.5, state=S.FINDING_STATE_ABSENT))
    findings = _draft(comparison).findings
    normal = {s.text: list(s.finding_codes) for s in findings if s.text.startswith(("The ", "No "))}
    # Lungs and heart have nothing reported: their normal sentences cite their absent labels. The pleura has a
    # pneumothorax, so it gets no "No pleural effusion or pneumothorax."
    assert normal == {"The lungs are clear.": ["edema"],
                      "The cardiomediastinal silhouette is within normal limits.": ["cardiomegaly"]}
    texts = [s.text for s in findings]
    assert texts.index("The lungs are clear.") < texts.index("Pneumothorax.") < texts.index(
        "The cardiomediastinal silhouette is within normal limits.")  # in region order
