"""The rule-based report labeler: negation, hedges, lists, sides, severity, change words, devices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hilum.common.reported_findings import DeviceType, Laterality
from hilum.priors.report_labeler import (
    Change,
    LabeledDevice,
    LabeledFinding,
    MentionStatus,
    keyword_codes,
    label_report,
)

P, A, U = MentionStatus.PRESENT, MentionStatus.ABSENT, MentionStatus.UNCERTAIN
LEFT, RIGHT, BOTH = Laterality.LEFT, Laterality.RIGHT, Laterality.BILATERAL
DEVICE_SENTENCES = Path(__file__).with_name("device_sentences.json")


def finding(report: str, code: str) -> tuple[Any, ...] | None:
    """(status, laterality, severity, change) of one label, None when the report does not mention it."""
    found = label_report(report).finding(code)
    return None if found is None else (found.status, found.laterality, found.severity, found.change)


@pytest.mark.parametrize(("report", "code", "expected"), [
    # plain statements, synonyms
    ("Small left pleural effusion.", "effusion", (P, LEFT, "small", None)),
    ("Blunting of the right costophrenic angle.", "effusion", (P, RIGHT, None, None)),
    ("The costophrenic angles are sharp.", "effusion", (A, None, None, None)),
    ("Moderate bilateral pleural effusions.", "effusion", (P, BOTH, "moderate", None)),
    ("Bibasilar atelectasis.", "atelectasis", (P, BOTH, None, None)),
    ("Atelectasis in the left lower lobe.", "atelectasis", (P, LEFT, None, None)),
    ("Opacity in the right lower lobe and lingula.", "lung_opacity", (P, BOTH, None, None)),
    ("Focal airspace disease in the right upper lobe.", "lung_opacity", (P, RIGHT, None, None)),
    ("Right middle lobe consolidation.", "consolidation", (P, RIGHT, None, None)),
    ("Large right pneumothorax.", "pneumothorax", (P, RIGHT, "large", None)),
    ("Small right hydropneumothorax.", "effusion", (P, RIGHT, "small", None)),
    ("Mild interstitial pulmonary edema.", "edema", (P, None, "mild", None)),
    ("Hyperinflated lungs with emphysema.", "emphysema", (P, None, None, None)),
    ("Subcutaneous emphysema in the left chest wall.", "emphysema", None),
    ("Small pericardial effusion.", "effusion", None),
    ("Chronic interstitial fibrosis.", "fibrosis", (P, None, None, None)),
    ("Right lower lobe pneumonia.", "pneumonia", (P, RIGHT, None, None)),
    ("Left apical pleural thickening.", "pleural_thickening", (P, LEFT, None, None)),
    ("A 1 cm nodule in the right upper lobe.", "nodule", (P, RIGHT, None, None)),
    ("A 6 mm nodular opacity in the right upper lobe.", "nodule", None),
    ("A 6 mm nodular opacity in the right upper lobe.", "lung_opacity", (P, RIGHT, None, None)),
    ("Changes of cystic fibrosis.", "fibrosis", None),
    ("Thickening of the minor fissure.", "pleural_thickening", (P, None, None, None)),
    ("Biapical pleural capping.", "pleural_thickening", (P, BOTH, None, None)),
    ("Known thyroid mass.", "mass", None),
    ("Fractured sternal wires.", "fracture", None),
    ("Mild prominence of the superior mediastinum.", "enlarged_cardiomediastinum", (P, None, "mild", None)),
    ("Large left hilar mass.", "mass", (P, LEFT, "large", None)),
    ("No mass effect.", "mass", None),
    ("Moderate hiatal hernia.", "hernia", (P, None, "moderate", None)),
    ("Cavitary lesion in the left upper lobe.", "lung_lesion", (P, LEFT, None, None)),
    ("Lytic lesion of the humerus.", "lung_lesion", None),
    ("Old healed right rib fractures.", "fracture", (P, RIGHT, None, None)),
    ("No acute fracture.", "fracture", (A, None, None, None)),
    ("Widened mediastinum.", "enlarged_cardiomediastinum", (P, None, None, None)),
    # the heart
    ("Mild cardiomegaly.", "cardiomegaly", (P, None, "mild", None)),
    ("The heart is mildly enlarged.", "cardiomegaly", (P, None, "mild", None)),
    ("Enlarged heart.", "cardiomegaly", (P, None, None, None)),
    ("Heart size is normal.", "cardiomegaly", (A, None, None, None)),
    ("Normal heart size.", "cardiomegaly", (A, None, None, None)),
    ("The heart is not enlarged.", "cardiomegaly", (A, None, None, None)),
    ("The heart, pulmonary XXXX and mediastinum are within normal limits.", "cardiomegaly", (A, None, None, None)),
    ("The heart, pulmonary XXXX and mediastinum are within normal limits.", "enlarged_cardiomediastinum",
     (A, None, None, None)),
    ("Normal cardiomediastinal silhouette.", "enlarged_cardiomediastinum", (A, None, None, None)),
    ("Heart size is at the upper limits of normal.", "cardiomegaly", (A, None, None, None)),
    ("Heart size near top normal limits.", "cardiomegaly", (A, None, None, None)),
    ("Borderline cardiomegaly.", "cardiomegaly", (P, None, "borderline", None)),
    ("The heart is borderline enlarged.", "cardiomegaly", (P, None, "borderline", None)),
    ("Heart size is mildly enlarged, mediastinal contours are normal.", "cardiomegaly", (P, None, "mild", None)),
    ("Heart size is mildly enlarged, mediastinal contours are normal.", "enlarged_cardiomediastinum",
     (A, None, None, None)),
    # negation and lists
    ("No pleural effusion.", "effusion", (A, None, None, None)),
    ("No effusion, pneumothorax or consolidation.", "consolidation", (A, None, None, None)),
    ("There is no focal consolidation, pleural effusion, or pneumothorax.", "pneumothorax", (A, None, None, None)),
    ("Without evidence of pneumothorax.", "pneumothorax", (A, None, None, None)),
    ("Pneumothorax is not seen.", "pneumothorax", (A, None, None, None)),
    ("Effusion or pneumothorax is not identified.", "effusion", (A, None, None, None)),
    ("Negative for pneumonia.", "pneumonia", (A, None, None, None)),
    ("No focal air space opacity to suggest a pneumonia.", "pneumonia", (A, None, None, None)),
    ("No effusion, but there is left basilar atelectasis.", "atelectasis", (P, LEFT, None, None)),
    ("No pneumothorax; small left effusion.", "effusion", (P, LEFT, "small", None)),
    ("No pleural effusion; stable mild cardiomegaly.", "cardiomegaly", (P, None, "mild", Change.STABLE)),
    ("No new effusion, stable cardiomegaly.", "cardiomegaly", (P, None, None, Change.STABLE)),
    ("No new effusion, stable cardiomegaly.", "effusion", (A, None, None, None)),
    ("No left effusion or pneumothorax.", "effusion", (A, LEFT, None, None)),
    # hedges
    ("Possible right lower lobe pneumonia.", "pneumonia", (U, RIGHT, None, None)),
    ("Left basilar opacity, likely atelectasis.", "atelectasis", (P, None, None, None)),
    ("Left basilar opacity, likely atelectasis.", "lung_opacity", (P, LEFT, None, None)),
    ("Probable small left pleural effusion.", "effusion", (P, LEFT, "small", None)),
    ("No pneumothorax, most suggestive of atelectasis.", "atelectasis", (P, None, None, None)),
    ("Opacity, atelectasis versus scarring.", "lung_opacity", (P, None, None, None)),
    ("Opacity, atelectasis versus scarring.", "atelectasis", (U, None, None, None)),
    ("Superimposed pneumonia is difficult to exclude.", "pneumonia", (U, None, None, None)),
    ("It would be difficult to exclude a superimposed pneumonia.", "pneumonia", (U, None, None, None)),
    ("Question edema or atypical infection?", "edema", (U, None, None, None)),
    ("Effusions and/or atelectasis.", "atelectasis", (U, None, None, None)),
    ("Pneumonia cannot be excluded.", "pneumonia", (U, None, None, None)),
    ("Cannot exclude a small pneumothorax.", "pneumothorax", (U, None, "small", None)),
    ("Findings may represent atelectasis or infiltrate.", "infiltration", (U, None, None, None)),
    ("Atelectasis versus pneumonia.", "atelectasis", (U, None, None, None)),
    ("Opacity suspicious for pneumonia.", "pneumonia", (U, None, None, None)),
    ("No effusion, possible consolidation.", "consolidation", (U, None, None, None)),
    ("Possible consolidation, no effusion.", "effusion", (A, None, None, None)),
    ("No focal consolidation, suspicious pulmonary opacity, pleural effusion, or pneumothorax.", "effusion",
     (A, None, None, None)),
    ("Lungs are clear airspace disease.", "lung_opacity", (A, None, None, None)),
    ("Fractures may not be demonstrated.", "fracture", None),
    ("There is no suggestion of pneumothorax.", "pneumothorax", (A, None, None, None)),
    # hypotheticals
    ("Follow-up to evaluate for pneumonia.", "pneumonia", None),
    ("History of pneumothorax.", "pneumothorax", None),
    # change since a prior
    ("Stable small left pleural effusion.", "effusion", (P, LEFT, "small", Change.STABLE)),
    ("Left pleural effusion is unchanged.", "effusion", (P, LEFT, None, Change.STABLE)),
    ("No change in the small right pleural effusion.", "effusion", (P, RIGHT, "small", Change.STABLE)),
    ("No significant interval change in cardiomegaly.", "cardiomegaly", (P, None, None, Change.STABLE)),
    ("Again seen is a right upper lobe nodule.", "nodule", (P, RIGHT, None, Change.STABLE)),
    ("Right upper lobe nodule is again seen.", "nodule", (P, RIGHT, None, Change.STABLE)),
    ("Persistent left lower lobe consolidation.", "consolidation", (P, LEFT, None, Change.STABLE)),
    ("New right upper lobe consolidation.", "consolidation", (P, RIGHT, None, Change.NEW)),
    ("Interval development of a small left effusion.", "effusion", (P, LEFT, "small", Change.NEW)),
    ("Improved bibasilar atelectasis.", "atelectasis", (P, BOTH, None, Change.IMPROVED)),
    ("Decreased right pleural effusion.", "effusion", (P, RIGHT, None, Change.IMPROVED)),
    ("Increased left pleural effusion.", "effusion", (P, LEFT, None, Change.WORSENED)),
    ("Worsening pulmonary edema.", "edema", (P, None, None, Change.WORSENED)),
    ("Interval resolution of the right pleural effusion.", "effusion", (A, RIGHT, None, Change.RESOLVED)),
    ("The left pneumothorax has resolved.", "pneumothorax", (A, LEFT, None, Change.RESOLVED)),
    ("Left lower lobe consolidation is no longer seen.", "consolidation", (A, LEFT, None, Change.RESOLVED)),
    ("Small to moderate right effusion.", "effusion", (P, RIGHT, "small to moderate", None)),
    ("Stable cardiomegaly with new left effusion.", "cardiomegaly", (P, None, None, Change.STABLE)),
    ("Stable cardiomegaly with new left effusion.", "effusion", (P, LEFT, None, Change.NEW)),
    ("Small right pleural effusion, new since prior.", "effusion", (P, RIGHT, "small", Change.NEW)),
    ("Left pneumothorax, new compared with the prior study.", "pneumothorax", (P, LEFT, None, Change.NEW)),
    # "less likely" is a hedge, not a smaller finding
    ("Atelectasis is less likely.", "atelectasis", (U, None, None, None)),
    ("Right basilar opacity, likely atelectasis, less likely pneumonia.", "pneumonia", (U, None, None, None)),
    ("Right basilar opacity, likely atelectasis, less likely pneumonia.", "atelectasis", (P, None, None, None)),
    # a side after a finding, as its place, is the finding's
    ("Opacity at the left base may represent atelectasis.", "lung_opacity", (P, LEFT, None, None)),
    ("Effusion in the right hemithorax.", "effusion", (P, RIGHT, None, None)),
])
def test_a_finding_is_labelled_from_its_context(report: str, code: str, expected: tuple[Any, ...] | None) -> None:
    assert finding(report, code) == expected


def test_a_sentence_names_each_of_its_findings_and_the_others_are_left_out() -> None:
    labels = label_report("Small left effusion and right lower lobe atelectasis. No pneumothorax.")
    assert labels.findings == (
        LabeledFinding("atelectasis", P, RIGHT, None, None),
        LabeledFinding("pneumothorax", A, None, None, None),
        LabeledFinding("effusion", P, LEFT, "small", None),
    )


def test_mentions_over_the_report_merge_present_over_uncertain_over_absent() -> None:
    report = "FINDINGS: No effusion on the right. Possible small left effusion.\nIMPRESSION: Left pleural effusion."
    assert finding(report, "effusion") == (P, LEFT, None, None)
    assert finding("Possible right effusion. No left effusion.", "effusion") == (U, RIGHT, None, None)


def test_sides_over_several_mentions_make_bilateral() -> None:
    assert finding("Right pleural effusion. Left pleural effusion.", "effusion") == (P, BOTH, None, None)


def test_only_the_describing_sections_are_read() -> None:
    report = "INDICATION: Evaluate for pneumonia, pneumothorax.\nFINDINGS: Mild cardiomegaly.\nIMPRESSION: Stable."
    assert [f.code for f in label_report(report).findings] == ["cardiomegaly"]


def test_no_acute_disease_is_recorded_and_implies_no_label() -> None:
    labels = label_report("IMPRESSION: No acute cardiopulmonary abnormality.")
    assert labels.no_acute_disease and labels.findings == () and labels.devices == ()
    assert label_report("Normal chest.").no_acute_disease
    assert not label_report("Small left effusion.").no_acute_disease
    assert not label_report("No acute bony abnormality.").no_acute_disease


def test_an_empty_report_has_no_labels() -> None:
    assert label_report("") == label_report("INDICATION: cough") == label_report("FINDINGS:\n")
    assert label_report("").findings == () and label_report("").devices == ()


def test_devices_are_listed_in_device_type_order_with_the_ett_tip_distance() -> None:
    labels = label_report("FINDINGS: Left chest tube. ETT tip 4 cm above the carina. Right IJ line, tip in the SVC.")
    assert labels.devices == (
        LabeledDevice(DeviceType.ETT, P, None, 40.0),
        LabeledDevice(DeviceType.CVC, P, RIGHT, None),
        LabeledDevice(DeviceType.CHEST_TUBE, P, LEFT, None),
    )
    assert labels.device(DeviceType.PICC) is None


def test_a_tip_distance_in_a_later_sentence_belongs_to_the_ett_named_before() -> None:
    assert label_report("Endotracheal tube in place. The tip is 2 cm below the carina.").devices == (
        LabeledDevice(DeviceType.ETT, P, None, -20.0),)
    assert label_report("Right IJ line. The tip is 2 cm below the carina.").devices == (
        LabeledDevice(DeviceType.CVC, P, RIGHT, None),)


def test_a_distance_in_mm_and_in_cm_reads_the_same() -> None:
    in_mm = label_report("ETT tip 35 mm above the carina.").device(DeviceType.ETT)
    in_cm = label_report("ETT tip 3.5 cm above the carina.").device(DeviceType.ETT)
    assert in_mm is not None and in_mm == in_cm and in_mm.mm_above_carina == 35.0


def device_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(DEVICE_SENTENCES.read_text())
    return cases


def test_the_device_sentences_are_many_and_cover_every_kind_status_and_side() -> None:
    cases = device_cases()
    expected = [device for case in cases for device in case["devices"]]
    assert len(cases) >= 60
    assert {d["kind"] for d in expected} == {kind.value for kind in DeviceType}
    assert {d["status"] for d in expected} == {status.value for status in MentionStatus}
    assert {d["laterality"] for d in expected} == {None, "left", "right", "bilateral"}
    assert len({d["mm_above_carina"] for d in expected if d["mm_above_carina"] is not None}) >= 10


@pytest.mark.parametrize("case", device_cases(), ids=lambda case: str(case["text"])[:60])
def test_each_device_sentence_gives_its_expected_devices(case: dict[str, Any]) -> None:
    assert label_report(case["text"]).as_json()["devices"] == case["devices"]


def test_the_json_form_names_findings_as_torchxrayvision_publishes_them() -> None:
    labels = label_report("Small left effusion. Possible lung lesion. ETT 5 cm above the carina.")
    assert labels.as_json() == {
        "findings": [
            {"label": "Effusion", "status": "present", "laterality": "left", "severity": "small", "change": None},
            {"label": "Lung Lesion", "status": "uncertain", "laterality": None, "severity": None, "change": None},
        ],
        "devices": [{"kind": "ett", "status": "present", "laterality": None, "mm_above_carina": 50.0}],
    }


def test_the_keyword_baseline_ignores_negation_but_not_the_sections() -> None:
    report = "INDICATION: pneumonia\nFINDINGS: No effusion or pneumothorax. Pericardial effusion."
    assert keyword_codes(report) == {"effusion", "pneumothorax"}
    assert label_report(report).findings == (LabeledFinding("pneumothorax", A, None, None, None),
                                             LabeledFinding("effusion", A, None, None, None))
