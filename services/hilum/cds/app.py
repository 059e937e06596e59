"""The CDS Hooks 2.0 HTTP service: discovery, the patient-view service and its feedback endpoint.

Handlers only read what reporting precomputed in Redis; nothing here runs inference. The one call out is
to the EHR's fhirServer, for a Patient the EHR did not prefetch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast
from urllib.parse import quote
from uuid import UUID

import httpx
import redis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fhir.resources.R4B.patient import Patient
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from hilum.cds.auth import JwtVerifier, Unauthorized, authorize, unauthorized_response
from hilum.cds.cards import Card, CdsCoding, patient_view_cards
from hilum.common.cds_view import CdsView, read_latest
from hilum.common.settings import CdsSection, FhirSection, TrustedIssuer

if TYPE_CHECKING:
    from hilum.ingestion.service import Ingestion

log = logging.getLogger(__name__)

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

    def prefetched_patient(self) -> Patient | None:
        """The prefetched FHIR Patient, or None when the EHR sent none."""
        if self.prefetch is None or self.prefetch.patient is None:
            return None
        return Patient.model_validate(self.prefetch.patient)


class PatientUnavailable(Exception):
    """The hook needs the Patient, and neither the prefetch nor the EHR's FHIR server gave it."""


def mrns(patient: Patient, system: str) -> list[str]:
    """The Patient's identifier values in the MRN system that DICOM PatientIDs belong to.

    context.patientId is the EHR's FHIR id, not an MRN, so it is never matched; an identifier in another
    system (or without one) is never matched either: the same value in two systems is two patients.
    """
    return list(dict.fromkeys(i.value for i in patient.identifier or [] if i.system == system and i.value))


def fetch_patient(body: PatientViewRequest, timeout_s: float = 5.0) -> Patient:
    """GET {fhirServer}/Patient/{context.patientId} with the request's fhirAuthorization bearer token, which is
    used for this one call only: never stored, queued or logged. Raises PatientUnavailable.
    """
    if body.fhirServer is None:
        raise PatientUnavailable("no prefetched Patient and no fhirServer to fetch it from")
    headers = {"Accept": "application/fhir+json"}
    token = (body.fhirAuthorization or {}).get("access_token")
    if isinstance(token, str) and token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{body.fhirServer.rstrip('/')}/Patient/{quote(body.context.patientId, safe='')}"
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as error:
        raise PatientUnavailable(f"the FHIR server did not answer ({type(error).__name__})") from None
    if response.status_code != 200:
        raise PatientUnavailable(f"the FHIR server answered {response.status_code}")
    try:
        return Patient.model_validate(response.json())
    except (ValueError, ValidationError):
        raise PatientUnavailable("the FHIR server's answer is not a FHIR Patient") from None


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


def _cache(request: Request) -> redis.Redis:
    """The Redis client holding precomputed views and feedback."""
    return cast(redis.Redis, request.app.state.redis)


def _clock(request: Request) -> datetime:
    """The current instant from the app's injected clock."""
    clock = cast(Callable[[], datetime], request.app.state.clock)
    return clock()


def _mrn_system(request: Request) -> str:
    """The identifier system DICOM PatientIDs belong to (HILUM_FHIR__PATIENT_IDENTIFIER_SYSTEM)."""
    return cast(str, request.app.state.patient_identifier_system)


Cache = Annotated[redis.Redis, Depends(_cache)]
MrnSystem = Annotated[str, Depends(_mrn_system)]
Now = Annotated[datetime, Depends(_clock)]


def latest_view(client: redis.Redis, system: str, patient_ids: list[str]) -> CdsView | None:
    """The most recent view stored under any of `patient_ids` (values in `system`), or None."""
    views = [view for pid in patient_ids if (view := read_latest(client, system, pid)) is not None]
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


router = APIRouter()
Authorized = [Depends(authorize)]  # every service call and feedback; discovery stays open, as CDS Hooks says


@router.get("/cds-services", response_model=Discovery, response_model_exclude_none=True)
def discovery() -> Discovery:
    """CDS Hooks discovery."""
    return DISCOVERY


@router.post(f"/cds-services/{SERVICE_ID}", response_model=CdsResponse, response_model_exclude_none=True,
             dependencies=Authorized,
             responses={401: {"description": "the call's JWT was missing or refused"},
                        412: {"description": "the Patient was neither prefetched nor fetchable from fhirServer"}})
def patient_view(body: PatientViewRequest, cache: Cache, system: MrnSystem) -> CdsResponse | JSONResponse:
    """Cards for the patient's latest chest radiograph result (none when Hilum has none).

    The patient is the prefetched Patient, else the one fetched from fhirServer; matched on its MRN
    (identifier system and value). Neither available: 412, as CDS Hooks says.
    """
    try:
        patient = body.prefetched_patient() or fetch_patient(body)
    except PatientUnavailable as missing:
        log.info("patient-view without a patient", extra={"code": "412"})
        return JSONResponse(status_code=412, content={"error": str(missing)})
    return CdsResponse(cards=patient_view_cards(latest_view(cache, system, mrns(patient, system))))


@router.post(f"/cds-services/{SERVICE_ID}/feedback", response_model=FeedbackAck, dependencies=Authorized,
             responses={401: {"description": "the call's JWT was missing or refused"}})
def feedback(body: FeedbackRequest, cache: Cache, now: Now) -> FeedbackAck:
    """Store card feedback for drift monitoring."""
    return FeedbackAck(stored=store_feedback(cache, body, now))


async def _bad_request(request: Request, error: Exception) -> JSONResponse:
    """400 with where and what was wrong; input values are never echoed (they may hold PHI or tokens)."""
    if not isinstance(error, RequestValidationError):
        raise error
    details = [
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
    ]
    return JSONResponse(status_code=400, content={"error": "invalid CDS Hooks request", "details": details})


def create_app(
    redis_client: redis.Redis, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ingestion: Ingestion | None = None, patient_identifier_system: str = FhirSection().patient_identifier_system,
    trusted_issuers: Sequence[TrustedIssuer] = (), public_url: str = CdsSection().base_url,
    clock_skew_s: int = CdsSection().clock_skew_s,
) -> FastAPI:
    """The CDS Hooks application reading views from (and writing feedback to) `redis_client`; given
    `ingestion`, it also serves the STOW-RS door under /dicomweb (hilum.ingestion.stow).

    Service calls and feedback need a JWT from one of `trusted_issuers` (none: every call is refused) whose
    aud is `public_url` + "/cds-services/" + the service id; used jtis are kept in `redis_client`.
    """
    app = FastAPI(title="Hilum CDS Hooks", version="2.0")
    app.state.redis = redis_client
    app.state.clock = clock
    app.state.patient_identifier_system = patient_identifier_system
    app.state.jwt_verifier = JwtVerifier(trusted_issuers, public_url, redis_client, clock_skew_s=clock_skew_s)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(Unauthorized, unauthorized_response)
    app.include_router(router)
    if ingestion is not None:  # imported only then: the CDS Hooks service alone needs no DICOM code
        from hilum.ingestion.stow import DICOMWEB_PREFIX, stow_router

        app.include_router(stow_router(ingestion), prefix=DICOMWEB_PREFIX)
    return app
