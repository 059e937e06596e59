"""encounter-discharge: a card for an unacknowledged critical AI finding, as a pure function and through the app
(where feedback on any of the report's cards acknowledges it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import time
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from hilum.cds.card_schema import Card
from hilum.cds.cards import OVERRIDE_REASONS, CardContext, card_uuid
from hilum.cds.discharge_cards import ACKNOWLEDGE_HOW, discharge_cards
from hilum.cds.services import Hook
from hilum.common.cds_view import CdsDevice, CdsFinding, CdsView, write_view
from hilum.common.reported_findings import ChangeSincePrior, DevicePosition, FindingStatus
from tests.unit.cds.card_rules import assert_cds_card
from tests.unit.cds.conftest import EhrFhirServer
from tests.unit.cds.hook_bodies import EHR_PATIENT_ID, MRN_SYSTEM, hook_request, prefetched, service_url

CONTEXT = CardContext(patient_id=EHR_PATIENT_ID, encounter_id="enc-1", public_url="https://hilum.example.org")
ACKNOWLEDGED = next(reason for reason in OVERRIDE_REASONS if reason.code == "acknowledged")
AUTH = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/Patient.read",
        "subject": "hilum"}
EFFUSION = CdsFinding(code="effusion", display="Pleural effusion", status=FindingStatus.PRESENT, probability=0.6,
                      change=ChangeSincePrior.NEW)


def pneumothorax(change: ChangeSincePrior | None = ChangeSincePrior.NEW,
                 status: FindingStatus = FindingStatus.PRESENT, display: str = "Pneumothorax") -> CdsFinding:
    return CdsFinding(code="pneumothorax", display=display, status=status, probability=0.9, change=change)


def validated(view_factory: Callable[..., CdsView], **overrides: Any) -> CdsView:
    return view_factory(**{"demo_weights": False, "model_version": "1.0.0", **overrides})


def only_card(cards: list[Card]) -> dict[str, Any]:
    (card,) = cards
    serialised = card.model_dump(mode="json", exclude_none=True)
    assert_cds_card(serialised)
    return serialised


# discharge_cards


def test_no_result_gives_no_card() -> None:
    assert discharge_cards(None, CONTEXT, acknowledged=False) == []


@pytest.mark.parametrize(
    "findings",
    [[], [EFFUSION], [pneumothorax(ChangeSincePrior.UNCHANGED)], [pneumothorax(status=FindingStatus.UNCERTAIN)],
     [pneumothorax(ChangeSincePrior.RESOLVED, FindingStatus.RESOLVED)]],
    ids=["no findings", "effusion only", "pneumothorax unchanged", "pneumothorax uncertain", "pneumothorax resolved"],
)
def test_a_result_that_is_not_alarming_gives_no_card(view_factory: Callable[..., CdsView],
                                                     findings: list[CdsFinding]) -> None:
    assert discharge_cards(validated(view_factory, findings=findings), CONTEXT, acknowledged=False) == []


def test_an_alarming_validated_result_is_a_critical_card(view_factory: Callable[..., CdsView]) -> None:
    view = validated(view_factory)
    card = only_card(discharge_cards(view, CONTEXT, acknowledged=False))
    assert card["indicator"] == "critical"
    assert card["summary"] == "Unacknowledged critical AI finding, chest X-ray 2024-03-05: Pneumothorax (new)"
    assert card["detail"].startswith(ACKNOWLEDGE_HOW)
    assert card["uuid"] == card_uuid(view, Hook.ENCOUNTER_DISCHARGE)
    assert "suggestions" not in card
    assert {(r["system"], r["code"]) for r in card["overrideReasons"]} >= {(ACKNOWLEDGED.system, ACKNOWLEDGED.code)}
    assert "DEMO" not in card["summary"] + card["detail"]


def test_a_pneumothorax_not_compared_with_a_prior_is_alarming(view_factory: Callable[..., CdsView]) -> None:
    card = only_card(discharge_cards(validated(view_factory, findings=[pneumothorax(None)]), CONTEXT, False))
    assert card["summary"].endswith(": Pneumothorax")


def test_an_alarming_demo_result_is_a_warning_labelled_demo(view_factory: Callable[..., CdsView]) -> None:
    card = only_card(discharge_cards(view_factory(), CONTEXT, acknowledged=False))
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("DEMO")
    assert "Pneumothorax (new)" in card["summary"]


def test_an_acknowledged_result_gives_no_card(view_factory: Callable[..., CdsView]) -> None:
    assert discharge_cards(validated(view_factory), CONTEXT, acknowledged=True) == []
    assert discharge_cards(view_factory(), CONTEXT, acknowledged=True) == []


def test_a_view_flagged_critical_without_a_pneumothorax_gives_a_card(view_factory: Callable[..., CdsView]) -> None:
    card = only_card(discharge_cards(validated(view_factory, critical=True, findings=[EFFUSION]), CONTEXT, False))
    assert card["indicator"] == "critical"
    assert card["summary"].endswith(": a critical finding")


def test_a_long_finding_name_keeps_the_summary_under_140(view_factory: Callable[..., CdsView]) -> None:
    long_name = "Right apical pneumothorax with mediastinal shift " * 4
    view = validated(view_factory, findings=[pneumothorax(display=long_name.strip())])
    card = only_card(discharge_cards(view, CONTEXT, False))
    assert len(card["summary"]) == 139 and card["summary"].endswith("…")


# Through the app


@pytest.fixture
def stored_view(redis_client: redis.Redis, view_factory: Callable[..., CdsView]) -> CdsView:
    view = view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM)
    assert write_view(redis_client, view)
    return view


def discharge(client: TestClient, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The encounter-discharge cards (by default for a call prefetching MRN-0042), each checked against the CDS
    Hooks card rules."""
    body = body or hook_request(Hook.ENCOUNTER_DISCHARGE, prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    response = client.post(service_url(Hook.ENCOUNTER_DISCHARGE), json=body)
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    for card in cards:
        assert_cds_card(card)
    return cards


def patient_view_card(client: TestClient) -> dict[str, Any]:
    response = client.post(service_url(Hook.PATIENT_VIEW),
                           json=hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042"))))
    assert response.status_code == 200
    (card,) = response.json()["cards"]
    assert_cds_card(card)
    return card


def override(client: TestClient, hook: Hook, card: str, reason: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST an "overridden" outcome on `card` to `hook`'s feedback endpoint; its answer."""
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2024-03-05T10:05:00Z",
            "overrideReason": reason or {"reason": ACKNOWLEDGED.model_dump(exclude_none=True)}}
    response = client.post(f"{service_url(hook)}/feedback", json={"feedback": [item]})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_discharge_with_prefetch_gives_the_card(client: TestClient, stored_view: CdsView) -> None:
    (card,) = discharge(client)
    assert card["uuid"] == card_uuid(stored_view, Hook.ENCOUNTER_DISCHARGE)
    assert card["indicator"] == "warning" and card["summary"].startswith("DEMO")


def test_discharge_without_prefetch_fetches_the_patient(client: TestClient, stored_view: CdsView,
                                                        ehr: EhrFhirServer) -> None:
    body = hook_request(Hook.ENCOUNTER_DISCHARGE, fhirServer=ehr.url, fhirAuthorization=AUTH)
    assert "prefetch" not in body
    (card,) = discharge(client, body)
    assert "Pneumothorax (new)" in card["summary"]
    assert ehr.requests == [("/fhir/Patient/ehr-123", "Bearer secret-token")]


def test_discharge_without_a_result_gives_no_card(client: TestClient) -> None:
    assert discharge(client) == []


def test_discharge_without_a_patient_is_412(client: TestClient, stored_view: CdsView) -> None:
    response = client.post(service_url(Hook.ENCOUNTER_DISCHARGE), json=hook_request(Hook.ENCOUNTER_DISCHARGE))
    assert response.status_code == 412


def test_feedback_on_the_patient_view_card_acknowledges(client: TestClient, stored_view: CdsView) -> None:
    assert len(discharge(client)) == 1
    card = patient_view_card(client)
    assert override(client, Hook.PATIENT_VIEW, card["uuid"]) == {"stored": 1, "repeated": 0}
    assert discharge(client) == []


def test_feedback_on_the_discharge_card_itself_acknowledges(client: TestClient, stored_view: CdsView) -> None:
    (card,) = discharge(client)
    override(client, Hook.ENCOUNTER_DISCHARGE, card["uuid"])
    assert discharge(client) == []


def test_an_override_with_a_comment_only_acknowledges(client: TestClient, stored_view: CdsView) -> None:
    (card,) = discharge(client)
    override(client, Hook.ENCOUNTER_DISCHARGE, card["uuid"], {"userComment": "Chest drain in situ."})
    assert discharge(client) == []


def test_feedback_on_an_unrelated_card_does_not_acknowledge(client: TestClient, stored_view: CdsView) -> None:
    override(client, Hook.PATIENT_VIEW, str(uuid.uuid4()))
    override(client, Hook.ENCOUNTER_DISCHARGE, str(uuid.uuid4()))
    assert len(discharge(client)) == 1


def test_an_undeclared_override_reason_is_refused_and_does_not_acknowledge(client: TestClient,
                                                                           stored_view: CdsView) -> None:
    (card,) = discharge(client)
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2024-03-05T10:05:00Z",
            "overrideReason": {"reason": {"system": "urn:other", "code": "acknowledged"}}}
    response = client.post(f"{service_url(Hook.ENCOUNTER_DISCHARGE)}/feedback", json={"feedback": [item]})
    assert response.status_code == 400
    assert len(discharge(client)) == 1


def test_a_later_study_needs_acknowledging_again(client: TestClient, redis_client: redis.Redis,
                                                 stored_view: CdsView, view_factory: Callable[..., CdsView]) -> None:
    override(client, Hook.PATIENT_VIEW, patient_view_card(client)["uuid"])
    assert discharge(client) == []
    later = view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM, study_time=time(9, 45),
                         study_instance_uid="1.2.826.0.1.3680043.8.498.1002",
                         diagnostic_report_id="5d0c7a52-8f0e-5b8e-a1f4-2c3b4d5e6f70")
    assert write_view(redis_client, later)
    (card,) = discharge(client)
    assert card["uuid"] == card_uuid(later, Hook.ENCOUNTER_DISCHARGE) != card_uuid(stored_view,
                                                                                  Hook.ENCOUNTER_DISCHARGE)
    override(client, Hook.ENCOUNTER_DISCHARGE, card["uuid"])
    assert discharge(client) == []


def test_a_malpositioned_tube_is_alarming_until_acknowledged(view_factory: Callable[..., CdsView]) -> None:
    ett = CdsDevice(code="device:ett", display="Endotracheal tube", position=DevicePosition.MALPOSITIONED,
                    text="Endotracheal tube tip 0.5 cm below the carina, malpositioned.")
    view = validated(view_factory, findings=[EFFUSION], devices=[ett])
    card = only_card(discharge_cards(view, CONTEXT, acknowledged=False))
    assert card["indicator"] == "critical"
    assert card["summary"].endswith(": Endotracheal tube malpositioned")
    assert discharge_cards(view, CONTEXT, acknowledged=True) == []
