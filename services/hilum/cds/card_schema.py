"""The CDS Hooks 2.0 response shapes Hilum sends: cards, suggestions with FHIR actions, links, override reasons.

Field rules follow the specification: summary under 140 characters, uuid on every card and suggestion,
selectionBehavior whenever there are suggestions, and no empty strings, lists or objects anywhere (absent
fields are left out when serialised with exclude_none).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

SUMMARY_MAX = 139  # the specification asks for fewer than 140 characters


class Indicator(StrEnum):
    """Card urgency as CDS Hooks 2.0 defines it."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class CdsCoding(BaseModel):
    """A CDS Hooks Coding (system, code, optional display)."""

    model_config = ConfigDict(frozen=True)

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = Field(default=None, min_length=1)


class Source(BaseModel):
    """Where a card's content comes from: a label shown to the user and a topic."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(min_length=1)
    topic: CdsCoding | None = None


class ActionType(StrEnum):
    """What a suggestion's action asks the EHR to do with a FHIR resource."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Action(BaseModel):
    """One FHIR change a suggestion proposes (create/update carry the resource, delete names resourceId)."""

    model_config = ConfigDict(frozen=True)

    type: ActionType
    description: str = Field(min_length=1)
    resource: dict[str, Any] | None = None
    resourceId: tuple[str, ...] | None = Field(default=None, min_length=1)  # "ResourceType/id" of what to delete

    @model_validator(mode="after")
    def _each_type_names_what_it_changes(self) -> Action:
        if self.type in (ActionType.CREATE, ActionType.UPDATE) and not self.resource:
            raise ValueError(f"a {self.type.value} action needs its resource")
        if self.type == ActionType.DELETE and not self.resourceId:
            raise ValueError("a delete action needs resourceId")
        return self


class Suggestion(BaseModel):
    """A proposal the clinician can accept in the EHR; its uuid comes back in feedback when accepted."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(min_length=1)
    uuid: str = Field(min_length=1)
    isRecommended: bool
    actions: tuple[Action, ...] = Field(min_length=1)


class LinkType(StrEnum):
    """absolute: a web page; smart: a SMART app the EHR launches with its launch context."""

    ABSOLUTE = "absolute"
    SMART = "smart"


class Link(BaseModel):
    """A link on a card; appContext is opaque to the EHR and handed to the SMART app at launch."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(min_length=1)
    url: str = Field(min_length=1)
    type: LinkType
    appContext: str | None = Field(default=None, min_length=1)


class SelectionBehavior(StrEnum):
    """How many of a card's suggestions the clinician may accept."""

    AT_MOST_ONE = "at-most-one"
    ANY = "any"


class Card(BaseModel):
    """A CDS Hooks 2.0 card."""

    model_config = ConfigDict(frozen=True)

    uuid: str = Field(min_length=1)
    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    detail: str | None = Field(default=None, min_length=1)
    indicator: Indicator
    source: Source
    suggestions: tuple[Suggestion, ...] | None = Field(default=None, min_length=1)
    selectionBehavior: SelectionBehavior | None = None
    overrideReasons: tuple[CdsCoding, ...] | None = Field(default=None, min_length=1)
    links: tuple[Link, ...] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _suggestions_need_a_selection_behavior(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("a card with suggestions needs selectionBehavior")
        return self


class CdsResponse(BaseModel):
    """A service's response: the cards (an empty list when there is nothing to say)."""

    cards: list[Card]
