"""The CDS Hooks 2.0 response models refuse cards the specification forbids."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hilum.cds.card_schema import (
    SUMMARY_MAX,
    Action,
    ActionType,
    Card,
    CdsCoding,
    CdsResponse,
    Indicator,
    Link,
    LinkType,
    SelectionBehavior,
    Source,
    Suggestion,
)
from tests.unit.cds.card_rules import assert_cds_card

CARD_UUID = "6f1d1c1b-2a3c-4b7f-9c1e-6c555c519d4e"
SUGGESTION_UUID = "0b7f6c1e-6c55-4c51-9d4e-6f1d1c1b2a3c"
ORDER = {"resourceType": "ServiceRequest", "status": "draft", "intent": "proposal"}
REASON = CdsCoding(system="https://hilum.dev/fhir/CodeSystem/cds-override-reason", code="acknowledged")


def action(**overrides: Any) -> Action:
    return Action(**{"type": ActionType.CREATE, "description": "Add a draft order", "resource": ORDER, **overrides})


def suggestion(**overrides: Any) -> Suggestion:
    return Suggestion(**{"label": "Order a chest CT", "uuid": SUGGESTION_UUID, "isRecommended": True,
                         "actions": (action(),), **overrides})


def card(**overrides: Any) -> Card:
    return Card(**{"uuid": CARD_UUID, "summary": "Chest X-ray: pneumothorax", "indicator": Indicator.WARNING,
                   "source": Source(label="Hilum chest X-ray AI"), **overrides})


def test_a_full_card_is_valid_and_serialises_without_empty_values() -> None:
    full = card(detail="**Detail**", suggestions=(suggestion(),), selectionBehavior=SelectionBehavior.AT_MOST_ONE,
                overrideReasons=(REASON,),
                links=(Link(label="Review", url="https://hilum.example/review", type=LinkType.SMART,
                            appContext="{}"),))
    serialised = CdsResponse(cards=[full]).model_dump(mode="json", exclude_none=True)
    (only,) = serialised["cards"]
    assert_cds_card(only)
    assert only["selectionBehavior"] == "at-most-one"
    assert only["suggestions"][0]["actions"][0]["resource"] == ORDER


def test_a_summary_of_139_characters_is_accepted_and_140_refused() -> None:
    assert SUMMARY_MAX == 139
    assert len(card(summary="x" * 139).summary) == 139
    with pytest.raises(ValidationError, match="summary"):
        card(summary="x" * 140)


@pytest.mark.parametrize("field", ["uuid", "summary", "detail"])
def test_empty_strings_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        card(**{field: ""})


def test_suggestions_need_a_selection_behavior() -> None:
    with pytest.raises(ValidationError, match="selectionBehavior"):
        card(suggestions=(suggestion(),))
    assert card(suggestions=(suggestion(),), selectionBehavior=SelectionBehavior.ANY).suggestions


@pytest.mark.parametrize("kind", [ActionType.CREATE, ActionType.UPDATE])
@pytest.mark.parametrize("resource", [None, {}])
def test_create_and_update_actions_need_their_resource(kind: ActionType, resource: dict[str, Any] | None) -> None:
    with pytest.raises(ValidationError, match="needs its resource"):
        action(type=kind, resource=resource)


def test_a_delete_action_names_what_it_deletes_not_a_resource() -> None:
    assert action(type=ActionType.DELETE, resource=None, resourceId=("ServiceRequest/sr-1",)).resource is None
    with pytest.raises(ValidationError, match="needs resourceId"):
        action(type=ActionType.DELETE, resource=None)


@pytest.mark.parametrize("field", ["suggestions", "overrideReasons", "links"])
def test_empty_tuples_are_refused(field: str) -> None:
    """An empty list is forbidden by CDS Hooks: the field is left out instead."""
    extra = {"selectionBehavior": SelectionBehavior.AT_MOST_ONE} if field == "suggestions" else {}
    with pytest.raises(ValidationError, match=field):
        card(**{field: ()}, **extra)


def test_a_suggestion_needs_an_action() -> None:
    with pytest.raises(ValidationError, match="actions"):
        suggestion(actions=())


def test_an_unknown_indicator_is_refused() -> None:
    with pytest.raises(ValidationError, match="indicator"):
        card(indicator="hard-stop")


def test_a_source_needs_a_label() -> None:
    with pytest.raises(ValidationError, match="label"):
        Source(label="")


def test_cards_are_immutable() -> None:
    built = card()
    with pytest.raises(ValidationError):
        built.summary = "changed"  # type: ignore[misc]
