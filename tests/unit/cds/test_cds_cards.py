"""Card rules from CDS Hooks 2.0 and Hilum's demo and urgency rules."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from hilum.cds.cards import OVERRIDE_REASONS, REVIEW_LAUNCH_PATH, CardContext, patient_view_cards
from hilum.common.cds_view import CdsDevice, CdsFinding, CdsView
from hilum.common.reported_findings import ChangeSincePrior, DevicePosition, FindingStatus
from hilum.common.wording import CARD_DEMO_PREFIX, DEMO_WARNING
from tests.unit.cds.card_rules import assert_cds_card

CONTEXT = CardContext(patient_id="ehr-123", encounter_id=None, public_url="https://hilum.example.org/")


def card_json(view: CdsView) -> dict[str, Any]:
    """The single card for `view`, serialised as the service sends it."""
    (card,) = patient_view_cards(view, CONTEXT)
    return card.model_dump(mode="json", exclude_none=True)


def test_demo_card(view_factory: Callable[..., CdsView]) -> None:
    card = card_json(view_factory())
    assert_cds_card(card)
    assert card["summary"].startswith("DEMO")
    assert card["summary"].startswith(CARD_DEMO_PREFIX)
    assert DEMO_WARNING in card["source"]["label"]
    assert DEMO_WARNING in card["detail"]


def test_validated_card_has_no_demo_wording(view_factory: Callable[..., CdsView]) -> None:
    card = card_json(view_factory(demo_weights=False, model_version="1.0.0"))
    assert_cds_card(card)
    assert "DEMO" not in card["summary"] + card["detail"] + card["source"]["label"]


def test_a_new_pneumothorax_from_a_validated_model_is_critical(view_factory: Callable[..., CdsView]) -> None:
    assert card_json(view_factory(demo_weights=False, model_version="1.0.0"))["indicator"] == "critical"


def test_demo_weights_never_raise_a_critical_card(view_factory: Callable[..., CdsView]) -> None:
    assert card_json(view_factory())["indicator"] == "warning"
    flagged = view_factory(critical=True, findings=[])
    assert card_json(flagged)["indicator"] == "warning"


def test_pneumothorax_already_on_the_prior_is_a_warning(view_factory: Callable[..., CdsView]) -> None:
    view = view_factory(findings=[CdsFinding(code="pneumothorax", display="Pneumothorax", probability=0.8,
                                             change=ChangeSincePrior.UNCHANGED)])
    assert card_json(view)["indicator"] == "warning"


def test_a_worsened_pneumothorax_is_critical_and_an_improved_one_a_warning(
        view_factory: Callable[..., CdsView]) -> None:
    def card(change: ChangeSincePrior) -> dict[str, Any]:
        return card_json(view_factory(demo_weights=False, model_version="1.0.0", findings=[
            CdsFinding(code="pneumothorax", display="Pneumothorax", probability=0.8, change=change)]))

    worsened, improved = card(ChangeSincePrior.WORSENED), card(ChangeSincePrior.IMPROVED)
    assert worsened["indicator"] == "critical" and "Pneumothorax (worsened)" in worsened["summary"]
    assert improved["indicator"] == "warning" and "(improved)" not in improved["summary"]


def test_resolved_or_uncertain_pneumothorax_is_not_critical(view_factory: Callable[..., CdsView]) -> None:
    for status, change in ((FindingStatus.RESOLVED, ChangeSincePrior.RESOLVED), (FindingStatus.UNCERTAIN, None)):
        view = view_factory(findings=[CdsFinding(code="pneumothorax", display="Pneumothorax", status=status,
                                                 probability=0.4, change=change)])
        assert card_json(view)["indicator"] == "info"


def test_other_findings_are_warnings(view_factory: Callable[..., CdsView]) -> None:
    view = view_factory(findings=[CdsFinding(code="effusion", display="Pleural effusion", probability=0.7)])
    assert card_json(view)["indicator"] == "warning"


def test_critical_flag_is_honoured(view_factory: Callable[..., CdsView]) -> None:
    view = view_factory(
        critical=True, demo_weights=False, model_version="1.0.0",
        findings=[CdsFinding(code="effusion", display="Effusion", probability=0.7)],
    )
    assert card_json(view)["indicator"] == "critical"


def test_no_findings_is_info(view_factory: Callable[..., CdsView]) -> None:
    card = card_json(view_factory(findings=[], impression=""))
    assert_cds_card(card)
    assert card["indicator"] == "info"
    assert "Impression" not in card["detail"]


def test_detail_lists_findings_probabilities_and_change(view_factory: Callable[..., CdsView]) -> None:
    detail = card_json(view_factory())["detail"]
    assert "| Finding | Status | Probability | Change since prior |" in detail
    assert "| Pneumothorax | present | 91% | new |" in detail
    assert "| Pleural effusion | present | 62% | unchanged |" in detail
    assert "New right pneumothorax." in detail
    assert "http" not in detail  # links go in `links`, not in the text


def _mixed_view(view_factory: Callable[..., CdsView]) -> CdsView:
    """A new pneumothorax, a possible effusion and a cardiomegaly resolved since the prior."""
    return view_factory(findings=[
        CdsFinding(code="pneumothorax", display="Pneumothorax", status=FindingStatus.PRESENT, probability=0.91,
                   change=ChangeSincePrior.NEW),
        CdsFinding(code="effusion", display="Pleural effusion", status=FindingStatus.UNCERTAIN, probability=0.45,
                   change=ChangeSincePrior.NOT_COMPARED),
        CdsFinding(code="cardiomegaly", display="Cardiomegaly", status=FindingStatus.RESOLVED, probability=0.12,
                   change=ChangeSincePrior.RESOLVED),
    ])


def test_summary_names_present_and_resolved_findings_only(view_factory: Callable[..., CdsView]) -> None:
    summary = card_json(_mixed_view(view_factory))["summary"]
    assert summary.endswith("(AI, preliminary): Pneumothorax (new), Cardiomegaly (resolved)")
    assert "effusion" not in summary


def test_detail_table_lists_every_reported_finding_with_its_status(view_factory: Callable[..., CdsView]) -> None:
    detail = card_json(_mixed_view(view_factory))["detail"]
    rows = [line for line in detail.splitlines() if line.startswith("| ") and "Status" not in line]
    assert rows == [
        "| Pneumothorax | present | 91% | new |",
        "| Pleural effusion | uncertain | 45% | not-compared |",
        "| Cardiomegaly | resolved | 12% | resolved |",
    ]


def test_detail_says_when_no_prior_was_compared(view_factory: Callable[..., CdsView]) -> None:
    view = view_factory(findings=[CdsFinding(code="effusion", display="Pleural effusion", probability=0.7)])
    assert "| Pleural effusion | present | 70% | not compared |" in card_json(view)["detail"]


def test_only_uncertain_findings_is_info_with_no_findings_in_the_summary(
    view_factory: Callable[..., CdsView],
) -> None:
    view = view_factory(findings=[CdsFinding(code="effusion", display="Pleural effusion",
                                             status=FindingStatus.UNCERTAIN, probability=0.45)])
    card = card_json(view)
    assert_cds_card(card)
    assert card["indicator"] == "info"
    assert card["summary"].endswith("no findings above threshold")
    assert "| Pleural effusion | uncertain | 45% |" in card["detail"]


def test_summary_is_cut_below_140_characters(view_factory: Callable[..., CdsView]) -> None:
    many = [
        CdsFinding(code=f"f{i}", display=f"Very long finding name number {i}", probability=0.6)
        for i in range(9)
    ]
    card = card_json(view_factory(findings=many))
    assert_cds_card(card)
    assert card["summary"].endswith("…")


def test_card_uuid_is_stable_per_report(view_factory: Callable[..., CdsView]) -> None:
    assert card_json(view_factory())["uuid"] == card_json(view_factory())["uuid"]
    assert card_json(view_factory())["uuid"] != card_json(view_factory(diagnostic_report_id="other"))["uuid"]


def test_no_view_no_cards() -> None:
    assert patient_view_cards(None, CONTEXT) == []


def test_every_card_declares_hilums_override_reasons(view_factory: Callable[..., CdsView]) -> None:
    card = card_json(view_factory())
    assert card["overrideReasons"] == [r.model_dump(exclude_none=True) for r in OVERRIDE_REASONS]
    assert "acknowledged" in {r["code"] for r in card["overrideReasons"]}


def test_every_card_links_to_the_review_page_as_a_smart_app(view_factory: Callable[..., CdsView]) -> None:
    (link,) = card_json(view_factory(diagnostic_report_id="report-7"))["links"]
    assert link["type"] == "smart"
    assert link["url"] == f"https://hilum.example.org{REVIEW_LAUNCH_PATH}"
    assert json.loads(link["appContext"]) == {"diagnosticReport": "report-7"}


def test_detail_dates_the_prior_it_was_compared_with(view_factory: Callable[..., CdsView]) -> None:
    assert "Compared with the prior study of 2023-11-02." in card_json(
        view_factory(prior_study_date=date(2023, 11, 2)))["detail"]
    assert "No prior study was compared." in card_json(view_factory())["detail"]


def _nodule(change: ChangeSincePrior | None) -> CdsFinding:
    return CdsFinding(code="nodule", display="Lung nodule", probability=0.8, change=change)


def test_a_new_nodule_gets_a_chest_ct_suggestion(view_factory: Callable[..., CdsView]) -> None:
    card = card_json(view_factory(findings=[_nodule(ChangeSincePrior.NEW)], demo_weights=False,
                                  model_version="1.0.0"))
    assert_cds_card(card)
    assert card["selectionBehavior"] == "at-most-one"
    (suggestion,) = card["suggestions"]
    assert uuid.UUID(suggestion["uuid"]) and suggestion["isRecommended"] is True
    (action,) = suggestion["actions"]
    order = action["resource"]
    assert action["type"] == "create"
    assert (order["resourceType"], order["status"], order["intent"]) == ("ServiceRequest", "draft", "proposal")
    assert order["subject"] == {"reference": "Patient/ehr-123"}
    assert order["code"]["coding"][0]["code"] == "24627-2"
    assert "Lung nodule (new)" in order["reasonCode"][0]["text"]


def test_a_demo_suggestion_says_so_and_is_not_recommended(view_factory: Callable[..., CdsView]) -> None:
    (suggestion,) = card_json(view_factory(findings=[_nodule(None)]))["suggestions"]
    assert suggestion["label"].startswith(CARD_DEMO_PREFIX) and suggestion["isRecommended"] is False
    assert suggestion["actions"][0]["resource"]["reasonCode"][0]["text"].startswith(CARD_DEMO_PREFIX)


def test_a_nodule_known_from_the_prior_gets_no_suggestion(view_factory: Callable[..., CdsView]) -> None:
    for known in (ChangeSincePrior.UNCHANGED, ChangeSincePrior.IMPROVED):
        card = card_json(view_factory(findings=[_nodule(known)]))
        assert "suggestions" not in card and "selectionBehavior" not in card
    assert "suggestions" in card_json(view_factory(findings=[_nodule(ChangeSincePrior.WORSENED)]))


def test_detail_says_when_the_result_replaces_an_earlier_one(view_factory: Callable[..., CdsView]) -> None:
    assert "AMENDED" not in card_json(view_factory())["detail"]
    detail = card_json(view_factory(amends_model_version="demo-untrained"))["detail"].splitlines()
    notice = "**AMENDED: this result replaces the one reported for this study with model version demo-untrained.**"
    # After the demo warning and the preliminary note, before the impression.
    assert detail.index(notice) < next(i for i, line in enumerate(detail) if line.startswith("**Impression:**"))


MALPOSITIONED_ETT = CdsDevice(
    code="device:ett", display="Endotracheal tube", position=DevicePosition.MALPOSITIONED, tip_distance_mm=-5.0,
    landmark="carina", text="Endotracheal tube tip 0.5 cm below the carina, malpositioned.")
CHILDS_PICC = CdsDevice(
    code="device:picc", display="PICC", position=None, tip_distance_mm=12.0, landmark="cavoatrial junction",
    text="PICC tip 1.2 cm above the cavoatrial junction, position not assessed: placement thresholds are for adults; "
         "patient is under 18.")


def test_a_malpositioned_tube_from_a_validated_model_is_critical_and_named_first(
    view_factory: Callable[..., CdsView],
) -> None:
    view = view_factory(demo_weights=False, model_version="1.0.0", findings=[], devices=[MALPOSITIONED_ETT])
    card = card_json(view)
    assert card["indicator"] == "critical"
    assert card["summary"] == "Chest X-ray 2024-03-05 (AI, preliminary): Endotracheal tube malpositioned"
    lines = card["detail"].splitlines()
    listed = lines[lines.index("**Tubes and lines:**") + 1]
    assert listed == "- Endotracheal tube tip 0.5 cm below the carina, malpositioned."
    # With findings too, the tube comes first.
    both = card_json(view_factory(demo_weights=False, model_version="1.0.0", devices=[MALPOSITIONED_ETT]))
    assert both["summary"].endswith(": Endotracheal tube malpositioned, Pneumothorax (new), Pleural effusion")


def test_demo_weights_never_make_a_tube_critical(view_factory: Callable[..., CdsView]) -> None:
    card = card_json(view_factory(findings=[], devices=[MALPOSITIONED_ETT]))
    assert card["indicator"] == "warning" and card["summary"].startswith("DEMO")


def test_tubes_without_a_malposition_raise_no_alarm_and_are_listed(view_factory: Callable[..., CdsView]) -> None:
    satisfactory = MALPOSITIONED_ETT.model_copy(update={
        "position": DevicePosition.SATISFACTORY, "tip_distance_mm": 45.0,
        "text": "Endotracheal tube tip 4.5 cm above the carina, satisfactory position."})
    card = card_json(view_factory(demo_weights=False, model_version="1.0.0", findings=[],
                                  devices=[satisfactory, CHILDS_PICC]))
    assert card["indicator"] == "info"
    assert card["summary"].endswith("no findings above threshold")
    assert "- Endotracheal tube tip 4.5 cm above the carina, satisfactory position." in card["detail"]
    assert "position not assessed: placement thresholds are for adults; patient is under 18." in card["detail"]
