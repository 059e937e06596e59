"""order-select and order-sign cards: the patient's recent chest X-ray AI result beside an imaging or referral order.

A draft ServiceRequest is relevant when its category is Imaging or Patient referral (SNOMED CT), or its code
names a chest CT. Other orders (medications, labs) get no card: Hilum has nothing to say about them. The
card suggests a chest CT for a new nodule or mass unless one is already among the draft orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from hilum.cds.card_schema import Card
from hilum.cds.cards import (
    CHEST_CT,
    IMAGING_CATEGORY,
    SNOMED,
    CardContext,
    build_card,
    card_detail,
    card_summary,
    card_uuid,
    cell,
    chest_ct_suggestion,
    follow_up_findings,
    indicator_for,
)
from hilum.cds.services import Hook
from hilum.common.cds_view import CdsView

REFERRAL_CATEGORY = (SNOMED, "3457005")  # Patient referral
RELEVANT_CATEGORIES = frozenset({(IMAGING_CATEGORY.system, IMAGING_CATEGORY.code), REFERRAL_CATEGORY})
# Chest CT, CT chest without contrast, CT chest with IV contrast.
CHEST_CT_CODES = frozenset({(CHEST_CT.system, CHEST_CT.code), (CHEST_CT.system, "29252-4"),
                            (CHEST_CT.system, "24628-0")})
# "CT chest", "CT of the thorax", "Chest CT", "chest CT without contrast"; a CT-guided procedure is not imaging.
_CHEST = r"(chest|thorax|thoracic)"
_CHEST_CT_TEXT = re.compile(rf"\bCT(\W+\w+){{0,2}}?\W+{_CHEST}\b|\b{_CHEST}(\W+\w+){{0,2}}?\W+CT\b", re.IGNORECASE)
_NOT_IMAGING = re.compile(r"guided|biopsy|drain", re.IGNORECASE)


@dataclass(frozen=True)
class DraftOrder:
    """What Hilum reads of a draft ServiceRequest: its reference, a label, and whether it concerns Hilum."""

    reference: str
    label: str
    relevant: bool
    chest_ct: bool


def _concepts(value: Any) -> list[dict[str, Any]]:
    """A CodeableConcept or a list of them, as dicts; anything else as none (draft orders are the EHR's)."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _text(value: Any) -> str:
    """A JSON string as itself; null, numbers and anything else as "" (never the text "None")."""
    return value if isinstance(value, str) else ""


def _codings(concepts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(system, code, display) of every coding in the concepts."""
    codings = [c for concept in concepts if isinstance(concept.get("coding"), list) for c in concept["coding"]]
    return [(_text(c.get("system")), _text(c.get("code")), _text(c.get("display")))
            for c in codings if isinstance(c, dict)]


def draft_order(resource: dict[str, Any]) -> DraftOrder | None:
    """The DraftOrder of a ServiceRequest resource; None for any other resource."""
    if resource.get("resourceType") != "ServiceRequest":
        return None
    code = _concepts(resource.get("code"))
    code_codings = _codings(code)
    texts = [text for c in code if (text := _text(c.get("text")).strip())] + [d for _, _, d in code_codings if d]
    chest_ct = (any((system, value) in CHEST_CT_CODES for system, value, _ in code_codings)
                or any(_CHEST_CT_TEXT.search(t) and not _NOT_IMAGING.search(t) for t in texts))
    categories = {(system, value) for system, value, _ in _codings(_concepts(resource.get("category")))}
    order_id = resource.get("id")
    return DraftOrder(
        reference=f"ServiceRequest/{order_id}" if isinstance(order_id, str) and order_id else "",
        label=texts[0] if texts else "an imaging or referral order",
        relevant=chest_ct or bool(categories & RELEVANT_CATEGORIES),
        chest_ct=chest_ct,
    )


def draft_orders(resources: list[dict[str, Any]]) -> list[DraftOrder]:
    """The ServiceRequests among the draft orders."""
    return [order for resource in resources if (order := draft_order(resource)) is not None]


def relevant_orders(orders: list[DraftOrder], selections: list[str] | None) -> list[DraftOrder]:
    """The relevant orders among those the hook is about: the selected ones (order-select's references), or all
    of them when `selections` is None (order-sign)."""
    return [o for o in orders if o.relevant and (selections is None or o.reference in selections)]


def order_cards(view: CdsView | None, context: CardContext, hook: Hook, orders: list[DraftOrder],
                selections: list[str] | None, today: date, lookback_days: int) -> list[Card]:
    """One card when a relevant order is selected (order-select) or about to be signed (order-sign) and the
    patient has a chest X-ray AI result from the last `lookback_days`; otherwise none.

    selections: order-select's selected references ("ServiceRequest/id"); None for order-sign (all orders).
    """
    relevant = relevant_orders(orders, selections)
    if view is None or not relevant or view.study_date < today - timedelta(days=lookback_days):
        return []
    ct_ordered = any(o.chest_ct for o in orders)
    named = "; ".join(cell(o.label) for o in relevant)
    lines = [f"**Relevant to the draft order:** {named}.", ""]
    if ct_ordered and follow_up_findings(view):
        lines += ["A chest CT is already among the draft orders.", ""]
    suggestion = None if ct_ordered else chest_ct_suggestion(view, context, card_uuid(view, hook))
    return [build_card(view, context, hook, summary=card_summary(view, lead="Recent chest X-ray"),
                       detail="\n".join(lines) + card_detail(view), indicator=indicator_for(view),
                       suggestions=[suggestion])]
