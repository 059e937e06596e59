"""The CDS Hooks 2.0 HTTP service: discovery, the patient-view service and its feedback endpoint.

Handlers only read what reporting precomputed in Redis; nothing here runs inference or calls out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast
from uuid import UUID

import redis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fhir.resources.R4B.patient import Patient
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from hilum.cds.cards import Card, CdsCoding, patient_view_cards
from hilum.common.cds_view import CdsView, read_latest

if TYPE_CHECKING:
    from hilum.ingestion.service import Ingestion

SERVICE_ID = "hilum-cxr-patient-view"
FEEDBACK_KEY = "hilum:cds:feedback"


class ServiceDefinition(BaseModel):
    """One entry of the discovery response."""

    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str] | None = None


class Discovery(BaseModel):
    """The discovery response: every CDS service this server offers."""

    services: list[ServiceDefinition]


class PatientViewContext(BaseModel):
    """patient-view context; patientId is the EHR's FHIR Patient id."""

    userId: str | None = Field(default=None, min_length=1)
    patientId: str = Field(min_length=1)
    encounterId: str | None = Field(default=None, min_length=1)


class PatientViewPrefetch(BaseModel):
    """The prefetch Hilum asks for: the FHIR Patient (its identifiers carry the DICOM PatientID)."""

    model_config = ConfigDict(extra="allow")

    patient: dict[str, Any] | None = None

    @field_validator("patient")
    @classmethod
    def _is_fhir_patient(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Reject a prefetch.patient that is not a FHIR Patient resource."""
        if value is not None:
            try:
                Patient.model_validate(value)
            except ValidationError as error:
                raise ValueError(f"not a valid FHIR Patient ({error.error_count()} problems)") from None
        return value


class PatientViewRequest(BaseModel):
    """A CDS Hooks 2.0 request for patient-view (fhirAuthorization is accepted, never stored or logged)."""

    hook: Literal["patient-view"]
    hookInstance: UUID
    fhirServer: str | None = Field(default=None, min_length=1)
    fhirAuthorization: dict[str, Any] | None = None
    context: PatientViewContext
    prefetch: PatientViewPrefetch | None = None

    def patient_ids(self) -> list[str]:
        """Ids to look the patient up by: context.patientId, then each prefetched Patient.identifier value."""
        ids = [self.context.patientId]
        if self.prefetch is not None and self.prefetch.patient is not None:
            patient = Patient.model_validate(self.prefetch.patient)
            ids += [i.value for i in patient.identifier or [] if i.value]
        return list(dict.fromkeys(ids))


class CdsResponse(BaseModel):
    """The service response: the cards (an empty list when there is nothing to say)."""

    cards: list[Card]


class OverrideReason(BaseModel):
    """Why a clinician overrode a card."""

    reason: CdsCoding | None = None
    userComment: str | None = Field(default=None, min_length=1)


class AcceptedSuggestion(BaseModel):
    """A suggestion the clinician accepted, by its uuid."""

    id: str = Field(min_length=1)


class FeedbackItem(BaseModel):
    """Feedback on one card: accepted or overridden, and when."""

    card: UUID
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime


class FeedbackRequest(BaseModel):
    """The feedback endpoint's body."""

    feedback: list[FeedbackItem] = Field(min_length=1)


class FeedbackRecord(BaseModel):
    """What is stored per feedback item, for drift monitoring."""

    service: str
    received_at: AwareDatetime
    feedback: FeedbackItem


class FeedbackAck(BaseModel):
    """Acknowledgement: how many feedback items were stored."""

    stored: int


DISCOVERY = Discovery(
    services=[
        ServiceDefinition(
            hook="patient-view",
            title="Hilum chest X-ray AI",
            description="Preliminary AI findings and change since prior for the patient's latest chest "
            "radiograph, as drafted by Hilum.",
            id=SERVICE_ID,
            prefetch={"patient": "Patient/{{context.patientId}}"},
        )
    ]
)


def authorize(request: Request) -> None:
    """Allows every request for now: JWT verification lands with the CDS security work."""


def _cache(request: Request) -> redis.Redis:
    """The Redis client holding precomputed views and feedback."""
    return cast(redis.Redis, request.app.state.redis)


def _clock(request: Request) -> datetime:
    """The current instant from the app's injected clock."""
    clock = cast(Callable[[], datetime], request.app.state.clock)
    return clock()


Cache = Annotated[redis.Redis, Depends(_cache)]
Now = Annotated[datetime, Depends(_clock)]


def latest_view(client: redis.Redis, patient_ids: list[str]) -> CdsView | None:
    """The most recent view stored under any of `patient_ids`, or None."""
    views = [view for pid in patient_ids if (view := read_latest(client, pid)) is not None]
    return max(views, key=CdsView.rank, default=None)


def store_feedback(client: redis.Redis, body: FeedbackRequest, received_at: datetime) -> int:
    """Append each feedback item to the Redis list FEEDBACK_KEY as JSON; returns how many."""
    records = [
        FeedbackRecord(service=SERVICE_ID, received_at=received_at, feedback=item).model_dump_json(
            exclude_none=True
        )
        for item in body.feedback
    ]
    client.rpush(FEEDBACK_KEY, *records)
    return len(records)


router = APIRouter(dependencies=[Depends(authorize)])


@router.get("/cds-services", response_model=Discovery, response_model_exclude_none=True)
def discovery() -> Discovery:
    """CDS Hooks discovery."""
    return DISCOVERY


@router.post(f"/cds-services/{SERVICE_ID}", response_model=CdsResponse, response_model_exclude_none=True)
def patient_view(body: PatientViewRequest, cache: Cache) -> CdsResponse:
    """Cards for the patient's latest chest radiograph result (none when Hilum has none)."""
    return CdsResponse(cards=patient_view_cards(latest_view(cache, body.patient_ids())))


@router.post(f"/cds-services/{SERVICE_ID}/feedback", response_model=FeedbackAck)
def feedback(body: FeedbackRequest, cache: Cache, now: Now) -> FeedbackAck:
    """Store card feedback for drift monitoring."""
    return FeedbackAck(stored=store_feedback(cache, body, now))


async def _bad_request(request: Request, error: Exception) -> JSONResponse:
    """400 with where and what was wrong; input values are never echoed (they may hold PHI or tokens)."""
    assert isinstance(error, RequestValidationError)
    details = [
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
    ]
    return JSONResponse(status_code=400, content={"error": "invalid CDS Hooks request", "details": details})


def create_app(
    redis_client: redis.Redis, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ingestion: Ingestion | None = None,
) -> FastAPI:
    """The CDS Hooks application reading views from (and writing feedback to) `redis_client`; given
    `ingestion`, it also serves the STOW-RS door under /dicomweb (hilum.ingestion.stow).
    """
    app = FastAPI(title="Hilum CDS Hooks", version="2.0")
    app.state.redis = redis_client
    app.state.clock = clock
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.include_router(router)
    if ingestion is not None:  # imported only then: the CDS Hooks service alone needs no DICOM code
        from hilum.ingestion.stow import DICOMWEB_PREFIX, stow_router

        app.include_router(stow_router(ingestion), prefix=DICOMWEB_PREFIX)
    return app
