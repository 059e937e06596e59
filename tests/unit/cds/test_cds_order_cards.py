"""order-select and order-sign: which draft orders concern Hilum, the card beside them and its chest CT
suggestion, as pure functions and through the app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from hilum.cds.card_schema import ActionType, Card
from hilum.cds.cards import CardContext
from hilum.cds.order_cards import DraftOrder, draft_order, draft_orders, order_cards, relevant_orders
from hilum.cds.services import Hook
from hilum.common.cds_view import CdsFinding, CdsView, write_view
from hilum.common.reported_findings import ChangeSincePrior, FindingStatus
from tests.unit.cds.card_rules import assert_cds_card
from tests.unit.cds.conftest import EhrFhirServer
from tests.unit.cds.hook_bodies import (
    CHEST_CT_LOINC,
    EHR_PATIENT_ID,
    IMAGING,
    MRN_SYSTEM,
    NOW,
    bundle,
    hook_request,
    prefetched,
    service_request,
    service_url,
)

SNOMED = "http://snomed.info/sct"
REFERRAL = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}
LABORATORY = {"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}
GLUCOSE = {"system": "http://loinc.org", "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}
TODAY = NOW.date()
LOOKBACK_DAYS = 90
CONTEXT = CardContext(patient_id=EHR_PATIENT_ID, encounter_id=None, public_url="https://hilum.example.org")
AUTH = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/Patient.read",
        "subject": "hilum"}
CT_ALREADY_ORDERED = "A chest CT is already among the draft orders."
ORDER_HOOKS = [Hook.ORDER_SELECT, Hook.ORDER_SIGN]


def finding(code: str, display: str, change: ChangeSincePrior | None = ChangeSincePrior.NEW,
            status: FindingStatus = FindingStatus.PRESENT) -> CdsFinding:
    return CdsFinding(code=code, display=display, status=status, probability=0.8, change=change)


NEW_NODULE = finding("nodule", "Lung nodule")


def validated(view_factory: Callable[..., CdsView], **overrides: Any) -> CdsView:
    """A view from a validated model (no demo weights)."""
    return view_factory(**{"demo_weights": False, "model_version": "1.0.0", **overrides})


def imaging_order(order_id: str = "sr-1") -> DraftOrder:
    order = draft_order(service_request(order_id, category=IMAGING, text="XR chest 2 views"))
    assert order is not None
    return order


def chest_ct_order(order_id: str = "sr-ct") -> DraftOrder:
    order = draft_order(service_request(order_id, code=CHEST_CT_LOINC))
    assert order is not None and order.chest_ct
    return order


def lab_order(order_id: str = "sr-lab") -> DraftOrder:
    order = draft_order(service_request(order_id, code=GLUCOSE, category=LABORATORY))
    assert order is not None
    return order


def cards_for(view: CdsView | None, orders: list[DraftOrder], *, hook: Hook = Hook.ORDER_SIGN,
              selections: list[str] | None = None, context: CardContext = CONTEXT) -> list[Card]:
    return order_cards(view, context, hook, orders, selections, TODAY, LOOKBACK_DAYS)


def only_card(cards: list[Card]) -> dict[str, Any]:
    """The single card, as JSON, checked against the CDS Hooks card rules."""
    (card,) = cards
    serialised = card.model_dump(mode="json", exclude_none=True)
    assert_cds_card(serialised)
    return serialised


# draft_order


def test_an_imaging_order_is_relevant() -> None:
    assert draft_order(service_request("sr-1", category=IMAGING, text="XR chest 2 views")) == DraftOrder(
        reference="ServiceRequest/sr-1", label="XR chest 2 views", relevant=True, chest_ct=False)


def test_a_referral_is_relevant() -> None:
    order = draft_order(service_request("sr-2", category=REFERRAL, text="Respiratory medicine referral"))
    assert order is not None and order.relevant and not order.chest_ct


@pytest.mark.parametrize("code", ["24627-2", "29252-4", "24628-0"])
def test_a_chest_ct_by_loinc_code_is_relevant_without_a_category(code: str) -> None:
    order = draft_order(service_request("sr-3", code={"system": "http://loinc.org", "code": code}))
    assert order is not None and order.relevant and order.chest_ct
    assert order.label == "an imaging or referral order"  # no text or display to name it by


def test_the_chest_ct_code_counts_only_in_loinc() -> None:
    order = draft_order(service_request("sr-3", code={"system": "http://example.org/local", "code": "24627-2"}))
    assert order is not None and not order.relevant and not order.chest_ct


@pytest.mark.parametrize("text", ["CT chest without contrast", "Chest CT", "ct thorax", "Thoracic CT angiogram"])
def test_a_chest_ct_by_text_is_relevant(text: str) -> None:
    order = draft_order(service_request("sr-4", text=text))
    assert order is not None and order.relevant and order.chest_ct and order.label == text


def test_a_chest_ct_by_coding_display_is_relevant() -> None:
    order = draft_order(service_request("sr-4", code={"system": "urn:local", "code": "X1", "display": "CT Chest"}))
    assert order is not None and order.chest_ct and order.label == "CT Chest"


@pytest.mark.parametrize("text", ["CT abdomen and pelvis", "Chest X-ray", "XR chest 2 views", "Doctor's act on chest"])
def test_other_text_is_no_chest_ct(text: str) -> None:
    order = draft_order(service_request("sr-5", text=text))
    assert order is not None and not order.chest_ct and not order.relevant


@pytest.mark.parametrize("resource", [{"resourceType": "MedicationRequest", "id": "m-1"}, {}, {"id": "sr-1"}])
def test_a_resource_that_is_not_a_service_request_is_no_draft_order(resource: dict[str, Any]) -> None:
    assert draft_order(resource) is None


def test_a_lab_service_request_is_not_relevant() -> None:
    assert lab_order() == DraftOrder(reference="ServiceRequest/sr-lab", label=GLUCOSE["display"], relevant=False,
                                     chest_ct=False)


@pytest.mark.parametrize(
    ("fields", "relevant"),
    [
        ({"code": "CT chest"}, False),
        ({"code": {"coding": {"system": "http://loinc.org", "code": "24627-2"}}}, False),
        ({"code": {"coding": [None, 7, "24627-2"]}}, False),
        ({"code": [{"text": 5}, "x", None]}, False),
        ({"category": {"coding": [IMAGING]}}, True),
        ({"category": "imaging"}, False),
        ({"category": [{"coding": [{"system": None, "code": None}]}]}, False),
        ({"id": 42, "category": [{"coding": [IMAGING]}]}, True),
        ({"code": None, "category": None}, False),
    ],
    ids=["code a string", "coding not a list", "coding items not objects", "code a list of junk",
         "category a dict", "category a string", "null system and code", "id not a string", "nulls"],
)
def test_malformed_shapes_never_raise(fields: dict[str, Any], relevant: bool) -> None:
    """Draft orders are the EHR's work in progress: odd shapes are read as far as they go, never raised on."""
    order = draft_order({"resourceType": "ServiceRequest", **fields})
    assert order is not None and order.relevant is relevant
    assert order.reference == "" and order.label


def test_a_null_display_is_not_shown_as_a_label() -> None:
    """A JSON null display is no label: the card must never read "Relevant to the draft order: None."."""
    order = draft_order(service_request("sr-6", code={"system": "http://loinc.org", "code": "24627-2",
                                                      "display": None}))
    assert order is not None and order.chest_ct
    assert order.label == "an imaging or referral order"


def test_draft_orders_keeps_the_service_requests_in_order() -> None:
    resources = [{"resourceType": "MedicationRequest", "id": "m-1"}, service_request("sr-2", category=IMAGING),
                 service_request("sr-1", code=GLUCOSE)]
    assert [o.reference for o in draft_orders(resources)] == ["ServiceRequest/sr-2", "ServiceRequest/sr-1"]


# order_cards


def test_no_card_without_a_relevant_order(view_factory: Callable[..., CdsView]) -> None:
    view = validated(view_factory, findings=[NEW_NODULE])
    assert cards_for(view, []) == []
    assert cards_for(view, [lab_order()]) == []


def test_no_card_without_a_result(view_factory: Callable[..., CdsView]) -> None:
    assert cards_for(None, [imaging_order()]) == []


def test_order_select_considers_only_the_selected_orders(view_factory: Callable[..., CdsView]) -> None:
    view = view_factory()
    orders = [lab_order("sr-lab"), imaging_order("sr-img")]
    assert cards_for(view, orders, hook=Hook.ORDER_SELECT, selections=["ServiceRequest/sr-lab"]) == []
    card = only_card(cards_for(view, orders, hook=Hook.ORDER_SELECT, selections=["ServiceRequest/sr-img"]))
    assert "**Relevant to the draft order:** XR chest 2 views." in card["detail"]
    assert "Glucose" not in card["detail"]


def test_order_sign_considers_every_order(view_factory: Callable[..., CdsView]) -> None:
    card = only_card(cards_for(view_factory(), [lab_order(), imaging_order("sr-1"), imaging_order("sr-2")]))
    assert "XR chest 2 views; XR chest 2 views." in card["detail"]


@pytest.mark.parametrize(("age_days", "carded"), [(0, True), (LOOKBACK_DAYS, True), (LOOKBACK_DAYS + 1, False)])
def test_a_result_older_than_the_lookback_gives_no_card(view_factory: Callable[..., CdsView], age_days: int,
                                                         carded: bool) -> None:
    view = view_factory(study_date=TODAY - timedelta(days=age_days))
    assert len(cards_for(view, [imaging_order()])) == int(carded)


def test_the_card_names_the_recent_result(view_factory: Callable[..., CdsView]) -> None:
    card = only_card(cards_for(validated(view_factory), [imaging_order()]))
    assert card["summary"].startswith("Recent chest X-ray 2024-03-05")
    assert "Pneumothorax (new)" in card["summary"]
    assert card["indicator"] == "critical"
    assert "suggestions" not in card and "selectionBehavior" not in card


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_a_new_nodule_suggests_a_chest_ct(view_factory: Callable[..., CdsView], hook: Hook) -> None:
    view = validated(view_factory, findings=[NEW_NODULE])
    card = only_card(cards_for(view, [imaging_order()], hook=hook,
                               selections=["ServiceRequest/sr-1"] if hook is Hook.ORDER_SELECT else None))
    assert card["selectionBehavior"] == "at-most-one"
    (suggestion,) = card["suggestions"]
    assert suggestion["isRecommended"] is True
    assert "Lung nodule (new)" in suggestion["label"]
    (action,) = suggestion["actions"]
    assert action["type"] == ActionType.CREATE.value
    order = action["resource"]
    assert order["resourceType"] == "ServiceRequest"
    assert (order["status"], order["intent"]) == ("draft", "proposal")
    assert order["subject"] == {"reference": f"Patient/{EHR_PATIENT_ID}"}
    assert {"system": "http://loinc.org", "code": "24627-2"}.items() <= order["code"]["coding"][0].items()
    assert "encounter" not in order
    assert CT_ALREADY_ORDERED not in card["detail"]


def test_the_suggestion_is_for_the_calls_patient_and_encounter(view_factory: Callable[..., CdsView]) -> None:
    context = CardContext(patient_id="other-fhir-id", encounter_id="enc-7", public_url="https://hilum.example.org")
    card = only_card(cards_for(validated(view_factory, findings=[NEW_NODULE]), [imaging_order()], context=context))
    order = card["suggestions"][0]["actions"][0]["resource"]
    assert order["subject"] == {"reference": "Patient/other-fhir-id"}
    assert order["encounter"] == {"reference": "Encounter/enc-7"}


def test_each_order_hook_has_its_own_card_uuid(view_factory: Callable[..., CdsView]) -> None:
    view = view_factory(findings=[NEW_NODULE])
    select = only_card(cards_for(view, [imaging_order()], hook=Hook.ORDER_SELECT, selections=["ServiceRequest/sr-1"]))
    sign = only_card(cards_for(view, [imaging_order()], hook=Hook.ORDER_SIGN))
    assert select["uuid"] != sign["uuid"]
    assert select["suggestions"][0]["uuid"] != sign["suggestions"][0]["uuid"]


def test_a_chest_ct_among_the_draft_orders_is_not_suggested_again(view_factory: Callable[..., CdsView]) -> None:
    """Even when the chest CT is not the selected order (order-select)."""
    view = validated(view_factory, findings=[NEW_NODULE])
    for cards in (cards_for(view, [imaging_order(), chest_ct_order()]),
                  cards_for(view, [imaging_order("sr-1"), chest_ct_order()], hook=Hook.ORDER_SELECT,
                            selections=["ServiceRequest/sr-1"])):
        card = only_card(cards)
        assert "suggestions" not in card and "selectionBehavior" not in card
        assert CT_ALREADY_ORDERED in card["detail"]


def test_demo_weights_label_the_suggestion_and_never_recommend_it(view_factory: Callable[..., CdsView]) -> None:
    card = only_card(cards_for(view_factory(findings=[NEW_NODULE]), [imaging_order()]))
    (suggestion,) = card["suggestions"]
    assert suggestion["label"].startswith("DEMO")
    assert suggestion["isRecommended"] is False
    assert card["summary"].startswith("DEMO")
    reason = suggestion["actions"][0]["resource"]["reasonCode"][0]["text"]
    assert reason.startswith("DEMO")


@pytest.mark.parametrize(
    "nodule",
    [finding("nodule", "Lung nodule", change=ChangeSincePrior.UNCHANGED),
     finding("nodule", "Lung nodule", status=FindingStatus.UNCERTAIN),
     finding("nodule", "Lung nodule", status=FindingStatus.RESOLVED, change=ChangeSincePrior.RESOLVED)],
    ids=["unchanged", "uncertain", "resolved"],
)
def test_a_nodule_that_is_not_new_and_present_suggests_nothing(view_factory: Callable[..., CdsView],
                                                               nodule: CdsFinding) -> None:
    card = only_card(cards_for(validated(view_factory, findings=[nodule]), [imaging_order(), chest_ct_order()]))
    assert "suggestions" not in card
    assert CT_ALREADY_ORDERED not in card["detail"]  # nothing to follow up, so nothing to say about the CT


def test_a_new_mass_suggests_a_chest_ct(view_factory: Callable[..., CdsView]) -> None:
    card = only_card(cards_for(validated(view_factory, findings=[finding("mass", "Mass")]), [imaging_order()]))
    assert "Mass (new)" in card["suggestions"][0]["label"]


# Through the app


@pytest.fixture
def stored_view(redis_client: redis.Redis, view_factory: Callable[..., CdsView]) -> CdsView:
    """A demo result with a new pneumothorax, an unchanged effusion and a new nodule for MRN-0042."""
    view = view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM,
                        findings=[*view_factory().findings, NEW_NODULE])
    assert write_view(redis_client, view)
    return view


def order_body(hook: Hook, resources: list[dict[str, Any]], selections: list[str] | None = None,
               **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"draftOrders": bundle(*resources)}
    if hook is Hook.ORDER_SELECT:
        context["selections"] = selections or []
    return hook_request(hook, context=context, **extra)


def post_cards(client: TestClient, hook: Hook, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(service_url(hook), json=body)
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    for card in cards:
        assert_cds_card(card)
    return cards


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_order_hooks_with_prefetch_give_the_card(client: TestClient, stored_view: CdsView, hook: Hook) -> None:
    body = hook_request(hook, prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    (card,) = post_cards(client, hook, body)
    assert card["summary"].startswith("DEMO") and "Pneumothorax (new)" in card["summary"]
    assert "XR chest 2 views" in card["detail"]
    (suggestion,) = card["suggestions"]
    order = suggestion["actions"][0]["resource"]
    assert order["subject"] == {"reference": f"Patient/{EHR_PATIENT_ID}"}
    assert suggestion["isRecommended"] is False


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_order_hooks_without_prefetch_fetch_the_patient(client: TestClient, stored_view: CdsView,
                                                        ehr: EhrFhirServer, hook: Hook) -> None:
    (card,) = post_cards(client, hook, hook_request(hook, fhirServer=ehr.url, fhirAuthorization=AUTH))
    assert "Pneumothorax (new)" in card["summary"]
    assert ehr.requests == [("/fhir/Patient/ehr-123", "Bearer secret-token")]


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_a_relevant_order_without_a_patient_is_412(client: TestClient, stored_view: CdsView, hook: Hook) -> None:
    response = client.post(service_url(hook), json=hook_request(hook))
    assert response.status_code == 412
    assert "fhirServer" in response.json()["error"]


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_no_relevant_order_is_an_empty_list_even_without_a_patient(client: TestClient, stored_view: CdsView,
                                                                   hook: Hook) -> None:
    """No patient is needed (so no 412) when no order concerns Hilum; for order-select an unselected imaging
    order does not count."""
    resources = [service_request("sr-lab", code=GLUCOSE, category=LABORATORY),
                 service_request("sr-img", category=IMAGING)]
    if hook is Hook.ORDER_SIGN:
        resources = resources[:1]
    response = client.post(service_url(hook), json=order_body(hook, resources, ["ServiceRequest/sr-lab"]))
    assert response.status_code == 200
    assert response.json() == {"cards": []}


@pytest.mark.parametrize("hook", ORDER_HOOKS)
def test_a_medication_only_order_gives_no_card(client: TestClient, stored_view: CdsView, hook: Hook) -> None:
    medication = {"resourceType": "MedicationRequest", "id": "m-1", "status": "draft", "intent": "order",
                  "subject": {"reference": f"Patient/{EHR_PATIENT_ID}"},
                  "medicationCodeableConcept": {"text": "Amoxicillin 500 mg"}}
    body = order_body(hook, [medication], ["MedicationRequest/m-1"], prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    assert post_cards(client, hook, body) == []


def test_order_select_of_a_chest_ct_gives_the_card_without_a_suggestion(client: TestClient,
                                                                        stored_view: CdsView) -> None:
    body = order_body(Hook.ORDER_SELECT, [service_request("sr-ct", code=CHEST_CT_LOINC, text="CT chest")],
                      ["ServiceRequest/sr-ct"], prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    (card,) = post_cards(client, Hook.ORDER_SELECT, body)
    assert "suggestions" not in card
    assert CT_ALREADY_ORDERED in card["detail"]


def test_an_old_result_gives_no_order_card(client: TestClient, redis_client: redis.Redis,
                                           view_factory: Callable[..., CdsView]) -> None:
    write_view(redis_client, view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM,
                                          study_date=date(2023, 1, 2)))
    body = hook_request(Hook.ORDER_SIGN, prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    assert post_cards(client, Hook.ORDER_SIGN, body) == []


def test_relevant_orders_are_the_selected_relevant_ones_or_all_relevant_ones() -> None:
    imaging, lab = draft_order(service_request("sr-a", category=IMAGING)), draft_order(service_request("sr-b"))
    assert imaging is not None and lab is not None
    assert relevant_orders([imaging, lab], None) == [imaging]
    assert relevant_orders([imaging, lab], ["ServiceRequest/sr-b"]) == []
    assert relevant_orders([imaging, lab], ["ServiceRequest/sr-a"]) == [imaging]
