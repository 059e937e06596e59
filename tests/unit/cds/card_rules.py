"""A shared check that a card, as JSON sent to the EHR, follows the CDS Hooks 2.0 card rules."""

from __future__ import annotations

import uuid
from typing import Any

INDICATORS = frozenset({"info", "warning", "critical"})
SELECTION_BEHAVIORS = frozenset({"at-most-one", "any"})
ACTION_TYPES = frozenset({"create", "update", "delete"})
LINK_TYPES = frozenset({"absolute", "smart"})


def empty_paths(node: Any, path: str = "$") -> list[str]:
    """JSON paths of every null, empty string, empty list or empty object in a JSON tree."""
    if node is None or node == "" or node == [] or node == {}:
        return [path]
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in empty_paths(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [p for index, value in enumerate(node) for p in empty_paths(value, f"{path}[{index}]")]
    return []


def assert_cds_card(card: dict[str, Any]) -> None:
    """uuid parses, 0 < len(summary) < 140, a known indicator, a non-empty source label, selectionBehavior
    whenever there are suggestions, well-formed suggestions, actions and links, and no null, "", [] or {}
    anywhere."""
    assert empty_paths(card) == [], f"empty values at {empty_paths(card)}"
    uuid.UUID(card["uuid"])
    assert 0 < len(card["summary"]) < 140, card["summary"]
    assert card["indicator"] in INDICATORS
    assert isinstance(card["source"]["label"], str) and card["source"]["label"].strip()
    suggestions = card.get("suggestions", [])
    if suggestions:
        assert card.get("selectionBehavior") in SELECTION_BEHAVIORS
    for suggestion in suggestions:
        assert suggestion["label"] and isinstance(suggestion.get("isRecommended", False), bool)
        uuid.UUID(suggestion["uuid"])
        assert suggestion["actions"]
        for action in suggestion["actions"]:
            assert action["type"] in ACTION_TYPES and action["description"]
            if action["type"] in ("create", "update"):
                assert action["resource"]["resourceType"]
    for link in card.get("links", []):
        assert link["label"] and link["url"] and link["type"] in LINK_TYPES
    for reason in card.get("overrideReasons", []):
        assert reason["system"] and reason["code"]
