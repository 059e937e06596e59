"""encounter-discharge cards: a warning when the patient's latest chest X-ray has a critical AI finding that no
clinician has acknowledged.

Until a review workflow exists, "acknowledged" means feedback (accepted or overridden) on any of Hilum's
cards for that report. A validated model's alarm is a critical card; demo weights give a warning that says
it is demo output, since they never raise a critical alarm.
"""

from __future__ import annotations

from hilum.cds.card_schema import Card, Indicator
from hilum.cds.cards import (
    CardContext,
    alarming,
    alarming_phrases,
    build_card,
    card_detail,
    summary_line,
)
from hilum.cds.services import Hook
from hilum.common.cds_view import CdsView

ACKNOWLEDGE_HOW = (
    "**Before discharge:** no clinician has acknowledged this critical AI finding. Acknowledge it by overriding "
    "this card with a reason (for example \"Seen; already known or being managed\"), or by responding to the "
    "result's card in the patient's chart."
)


def discharge_cards(view: CdsView | None, context: CardContext, acknowledged: bool) -> list[Card]:
    """One card when the latest result is alarming and unacknowledged; otherwise none."""
    if view is None or not alarming(view) or acknowledged:
        return []
    named = ", ".join(alarming_phrases(view)) or "a critical finding"
    summary = summary_line(view, f"Unacknowledged critical AI finding, chest X-ray {view.study_date.isoformat()}: "
                                 f"{named}")
    indicator = Indicator.WARNING if view.demo_weights else Indicator.CRITICAL
    return [build_card(view, context, Hook.ENCOUNTER_DISCHARGE, summary=summary,
                       detail=f"{ACKNOWLEDGE_HOW}\n\n{card_detail(view)}", indicator=indicator)]
