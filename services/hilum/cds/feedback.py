"""Card feedback (CDS Hooks 2.0): the request shape, idempotent storage in Redis, and what monitoring reads.

Each item is stored once: the EHR may resend a batch (a retry after a timeout), and a repeat of an item
already stored is counted, not stored again. Records are kept in arrival order for drift monitoring
(`hilum cds feedback`), and any feedback on a card marks that card acknowledged, which is what
encounter-discharge asks before it stops warning about a critical finding.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import redis
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from hilum.cds.card_schema import CdsCoding
from hilum.cds.cards import OVERRIDE_REASONS

FEEDBACK_KEY = "hilum:cds:feedback"  # list: FeedbackRecord JSON, oldest first
SEEN_KEY = "hilum:cds:feedback:seen"  # hash: item digest -> 1, so a repeat is not stored twice
ACKNOWLEDGED_KEY = "hilum:cds:acknowledged"  # set: uuids of cards that received feedback

# Stores one item unless its digest was seen; the check and the writes cannot interleave with a repeat.
_STORE_ONCE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""


class OverrideReason(BaseModel):
    """Why a clinician overrode a card: one of the card's declared reasons, a comment, or both."""

    reason: CdsCoding | None = None
    userComment: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _reason_is_one_hilum_declared(self) -> OverrideReason:
        """The reason must be one of the overrideReasons every Hilum card declares."""
        declared = {(r.system, r.code) for r in OVERRIDE_REASONS}
        if self.reason is not None and (self.reason.system, self.reason.code) not in declared:
            raise ValueError("overrideReason.reason is not one of the card's overrideReasons")
        return self


class AcceptedSuggestion(BaseModel):
    """A suggestion the clinician accepted, by its uuid."""

    id: str = Field(min_length=1)


class FeedbackItem(BaseModel):
    """Feedback on one card: accepted (with the suggestions taken) or overridden, and when."""

    card: UUID
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @model_validator(mode="after")
    def _outcome_matches_its_details(self) -> FeedbackItem:
        """CDS Hooks 2.0: accepted names the suggestions taken; an override accepts none."""
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("an accepted outcome needs acceptedSuggestions")
        if self.outcome == "overridden" and self.acceptedSuggestions:
            raise ValueError("an overridden outcome accepts no suggestions")
        if self.outcome == "accepted" and self.overrideReason is not None:
            raise ValueError("an accepted outcome has no overrideReason")
        return self


class FeedbackRequest(BaseModel):
    """The feedback endpoint's body."""

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)


class FeedbackRecord(BaseModel):
    """What is stored per feedback item: the service it was for, when it arrived, and the item."""

    service: str
    received_at: AwareDatetime
    feedback: FeedbackItem


class FeedbackAck(BaseModel):
    """How many items were stored now, and how many were repeats of items already stored."""

    stored: int
    repeated: int


def item_digest(service: str, item: FeedbackItem) -> str:
    """The identity of a feedback item (outcome timestamp in UTC, so one instant written two ways is one)."""
    canonical = item.model_copy(update={"outcomeTimestamp": item.outcomeTimestamp.astimezone(UTC)})
    return hashlib.sha256(f"{service}\x1f{canonical.model_dump_json()}".encode()).hexdigest()


def store_feedback(client: redis.Redis, service: str, body: FeedbackRequest, received_at: datetime) -> FeedbackAck:
    """Store each item not stored before (in order) and mark its card acknowledged."""
    stored = 0
    for item in body.feedback:
        record = FeedbackRecord(service=service, received_at=received_at, feedback=item)
        stored += int(client.eval(_STORE_ONCE, 3, SEEN_KEY, FEEDBACK_KEY, ACKNOWLEDGED_KEY,
                                  item_digest(service, item), record.model_dump_json(exclude_none=True),
                                  str(item.card)))
    return FeedbackAck(stored=stored, repeated=len(body.feedback) - stored)


def acknowledged(client: redis.Redis, card_uuids: list[str]) -> bool:
    """Whether any of these cards received feedback (accepted or overridden)."""
    return any(client.smismember(ACKNOWLEDGED_KEY, card_uuids))


def read_feedback(client: redis.Redis, last: int | None = None) -> list[FeedbackRecord]:
    """The stored records, oldest first; only the `last` most recent when given."""
    start = -last if last else 0
    return [FeedbackRecord.model_validate_json(raw) for raw in client.lrange(FEEDBACK_KEY, start, -1)]


def outcome_counts(records: list[FeedbackRecord]) -> Counter[tuple[str, str, str]]:
    """(service, outcome, override reason code or "-") -> count: the figures drift monitoring watches."""
    return Counter(
        (r.service, r.feedback.outcome,
         r.feedback.overrideReason.reason.code
         if r.feedback.overrideReason and r.feedback.overrideReason.reason else "-")
        for r in records
    )
