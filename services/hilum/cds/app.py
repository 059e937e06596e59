"""The CDS Hooks 2.0 HTTP service: discovery, one service per hook, feedback, the review-page placeholder, and the
operational endpoints (/healthz, /readyz, /metrics, request latency).

Handlers only read what reporting precomputed in Redis (and the feedback stored there); nothing here runs
inference. They run on the event loop: their work is a little CPU and a few loopback Redis round trips (with
a socket timeout), which is cheaper there than a hop to a worker thread. The one call out, to the EHR's
fhirServer for a Patient the EHR did not prefetch, runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, cast

import anyio
import redis
from fastapi import APIRouter, Depends, FastAPI, Request, routing
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hilum.audit.spool import AuditSpool
from hilum.audit.trail import AuditTrail
from hilum.cds.access_audit import patient_record
from hilum.cds.auth import JwtVerifier, Unauthorized, authorize, unauthorized_response
from hilum.cds.card_schema import Card, CdsResponse
from hilum.cds.cards import REVIEW_LAUNCH_PATH, CardContext, card_uuids, patient_view_cards
from hilum.cds.discharge_cards import discharge_cards
from hilum.cds.feedback import FeedbackAck, FeedbackRequest, acknowledged, store_feedback
from hilum.cds.hooks import (
    EncounterDischargeRequest,
    HookRequest,
    OrderSelectRequest,
    OrderSignRequest,
    PatientViewRequest,
)
from hilum.cds.order_cards import draft_orders, order_cards, relevant_orders
from hilum.cds.patients import PatientUnavailable, fetch_patient, mrns, trusted_prefetch
from hilum.cds.services import DISCOVERY, SERVICES, Discovery, Hook, service_id
from hilum.common.cds_view import CdsView, read_latest
from hilum.common.fastapi_app import fastapi_app
from hilum.common.metrics import HTTP_REQUEST_DURATION, metrics_text
from hilum.common.settings import CdsSection, FhirSection, TrustedIssuer
from hilum.common.tracing import study_span

if TYPE_CHECKING:
    from hilum.fhir_api.app import FhirApi
    from hilum.ingestion.service import Ingestion

log = logging.getLogger(__name__)

Responses = dict[int | str, dict[str, Any]]
REFUSED: Responses = {401: {"description": "the call's JWT was missing or refused"},
                      503: {"description": "the results store (Redis) is unavailable; retry later"}}
SERVICE_RESPONSES: Responses = {
    **REFUSED, 412: {"description": "the Patient was neither prefetched nor fetchable from fhirServer"}}
UNMATCHED = "unmatched"  # the route label of a request no route matched
# Methods outside this set are labelled "other", so that a client cannot mint label values.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class CdsState:
    """What the handlers read: the Redis client, the clock, the MRN system, Hilum's public URL, the lookback, and
    for readiness the database sessions (None: no database to check) and how long each check may take."""

    redis: redis.Redis
    clock: Callable[[], datetime]
    mrn_system: str
    public_url: str
    order_lookback_days: int
    sessions: sessionmaker[Session] | None = None
    readiness_timeout_s: float = CdsSection().redis_timeout_s
    # Where each call that reads a patient's result is recorded (the audit spool, drained into the database by the
    # assembler); None: not audited (tests of the cards alone).
    audit: AuditSpool | None = None

    async def latest_view(self, body: HookRequest, request: Request) -> CdsView | None:
        """The latest result of the call's patient (matched on MRN system and value), or None, recorded in the audit
        trail (its spool) before it is answered. A Patient that must be fetched from the EHR is fetched on a worker
        thread. Raises PatientUnavailable, and redis.RedisError (a 503) when Redis cannot be read or take the record."""
        patient = trusted_prefetch(body)
        if patient is None:
            patient = await run_in_threadpool(fetch_patient, body)
        patient_ids = mrns(patient, self.mrn_system)
        views = [view for pid in patient_ids if (view := read_latest(self.redis, self.mrn_system, pid)) is not None]
        latest = max(views, key=CdsView.rank, default=None)
        if self.audit is not None:
            self.audit.record(patient_record(body, request, self.mrn_system, patient_ids, latest))
        return latest

    def card_context(self, body: HookRequest) -> CardContext:
        """The call's patient and encounter, for the cards' FHIR actions and links."""
        return CardContext(patient_id=body.context.patientId, encounter_id=body.context.encounterId,
                           public_url=self.public_url)


async def _state(request: Request) -> CdsState:
    return cast(CdsState, request.app.state.cds)


State = Annotated[CdsState, Depends(_state)]
router = APIRouter()
Authorized = [Depends(authorize)]  # every service call and feedback; discovery stays open, as CDS Hooks says


def cds_response(cards: list[Card]) -> JSONResponse:
    """The response as sent: the cards were validated when built, so FastAPI's second validation against
    response_model (which stays declared, for the OpenAPI description) is skipped."""
    return JSONResponse(CdsResponse(cards=cards).model_dump(mode="json", exclude_none=True))


def _service_path(hook: Hook) -> str:
    return f"/cds-services/{service_id(hook)}"


@router.get("/cds-services", response_model=Discovery, response_model_exclude_none=True)
async def discovery() -> Discovery:
    """CDS Hooks discovery (open: it holds no PHI)."""
    return DISCOVERY


@router.post(_service_path(Hook.PATIENT_VIEW), response_model=CdsResponse, response_model_exclude_none=True,
             dependencies=Authorized, responses=SERVICE_RESPONSES)
async def patient_view(body: PatientViewRequest, state: State, request: Request) -> JSONResponse:
    """The patient's latest chest radiograph result, with change since prior (no card when Hilum has none)."""
    return cds_response(patient_view_cards(await state.latest_view(body, request), state.card_context(body)))


@router.post(_service_path(Hook.ORDER_SELECT), response_model=CdsResponse, response_model_exclude_none=True,
             dependencies=Authorized, responses=SERVICE_RESPONSES)
async def order_select(body: OrderSelectRequest, state: State, request: Request) -> JSONResponse:
    """The recent AI result when an imaging or referral order is selected."""
    orders = draft_orders(body.context.draftOrders.resources())
    if not relevant_orders(orders, body.context.selections):
        return cds_response([])  # nothing to say: no need to find the patient
    return cds_response(order_cards(await state.latest_view(body, request), state.card_context(body), Hook.ORDER_SELECT,
                                         orders, body.context.selections, state.clock().date(),
                                         state.order_lookback_days))


@router.post(_service_path(Hook.ORDER_SIGN), response_model=CdsResponse, response_model_exclude_none=True,
             dependencies=Authorized, responses=SERVICE_RESPONSES)
async def order_sign(body: OrderSignRequest, state: State, request: Request) -> JSONResponse:
    """The recent AI result before imaging or referral orders are signed."""
    orders = draft_orders(body.context.draftOrders.resources())
    if not relevant_orders(orders, None):
        return cds_response([])
    return cds_response(order_cards(await state.latest_view(body, request), state.card_context(body), Hook.ORDER_SIGN,
                                         orders, None, state.clock().date(), state.order_lookback_days))


@router.post(_service_path(Hook.ENCOUNTER_DISCHARGE), response_model=CdsResponse, response_model_exclude_none=True,
             dependencies=Authorized, responses=SERVICE_RESPONSES)
async def encounter_discharge(body: EncounterDischargeRequest, state: State, request: Request) -> JSONResponse:
    """A warning when the latest result has a critical finding no clinician has acknowledged."""
    view = await state.latest_view(body, request)
    seen = view is not None and acknowledged(state.redis, card_uuids(view))
    return cds_response(discharge_cards(view, state.card_context(body), seen))


def _feedback_route(service: str) -> Callable[[FeedbackRequest, CdsState], Awaitable[FeedbackAck]]:
    """The feedback handler of one service."""

    async def feedback(body: FeedbackRequest, state: State) -> FeedbackAck:
        """Store card feedback (repeats are not stored twice); feedback on a card acknowledges it."""
        return store_feedback(state.redis, service, body, state.clock())

    return feedback


for _definition in SERVICES.values():
    router.add_api_route(f"/cds-services/{_definition.id}/feedback", _feedback_route(_definition.id),
                         methods=["POST"], response_model=FeedbackAck, dependencies=Authorized, responses=REFUSED,
                         name=f"feedback_{_definition.hook.value.replace('-', '_')}",
                         summary=f"Feedback on {_definition.hook.value} cards")


@router.get(REVIEW_LAUNCH_PATH, response_class=PlainTextResponse)
async def review_launch() -> str:
    """Where the cards' SMART link points: a placeholder until Hilum's review page exists."""
    return ("Hilum's review page is not available in this version. The AI result is the preliminary "
            "DiagnosticReport named on the card; review it in your PACS or EHR.\n")


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    """Liveness: 200 while the process serves; no dependency is asked (a Redis outage must not restart pods)."""
    return JSONResponse({"status": "alive"})


def _select_one(sessions: sessionmaker[Session]) -> None:
    """The database answers a query (SELECT 1)."""
    with sessions() as session:
        session.execute(text("SELECT 1"))


async def _answers(dependency: str, check: Callable[[], object], timeout_s: float) -> bool:
    """Whether check() returns within timeout_s (run on a worker thread, abandoned when it takes longer)."""
    try:
        with anyio.fail_after(timeout_s):
            await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
    except (TimeoutError, redis.RedisError, SQLAlchemyError, OSError) as error:
        log.warning("not ready: %s unavailable (%s)", dependency, type(error).__name__)
        return False
    return True


@router.get("/readyz", include_in_schema=False)
async def readyz(state: State) -> JSONResponse:
    """Readiness: Redis answers a PING and the database a SELECT 1, each within readiness_timeout_s; else 503
    naming the dependencies that failed (never their address)."""
    checks: dict[str, Callable[[], object]] = {"redis": state.redis.ping}
    if state.sessions is not None:
        checks["database"] = partial(_select_one, state.sessions)
    answered = await asyncio.gather(*(_answers(name, check, state.readiness_timeout_s)
                                      for name, check in checks.items()))
    failed = [name for name, ok in zip(checks, answered, strict=True) if not ok]
    if failed:
        return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus metrics of this process, or of every uvicorn worker in multiprocess mode."""
    body, content_type = metrics_text()
    return Response(body, media_type=content_type)


def route_template(scope: Scope) -> str:
    """The template of the route that matched the request (e.g. "/fhir/{resource_type}/{resource_id}", with the
    prefix its router was included with), or "unmatched"; never the raw path, which may carry patient ids."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    # FastAPI before 0.165 copies an included router's routes with the prefix in their path; later releases keep
    # the router's own routes and say, through iter_route_contexts, under which prefix each one matched.
    iter_route_contexts = getattr(routing, "iter_route_contexts", None)
    if iter_route_contexts is not None:
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        for context in iter_route_contexts(scope["app"].routes):
            if context.original_route is route and context.path_regex.fullmatch(path):
                return str(context.path)
    return str(getattr(route, "path", UNMATCHED))


class RequestLatencyMiddleware:
    """Observes hilum_http_request_duration_seconds for each HTTP request, from its arrival to the end of its
    response, labelled by route template, method and status (an exception escaping the app counts as 500); and traces
    it, a span named by method and route template (never the path itself, nor its query: they hold MRNs and UIDs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
        with study_span(f"HTTP {method}") as span:
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                route = route_template(scope)
                HTTP_REQUEST_DURATION.labels(route=route, method=method,
                                             status=str(status)).observe(time.perf_counter() - started)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)


async def _bad_request(request: Request, error: Exception) -> JSONResponse:
    """400 with where and what was wrong; input values are never echoed (they may hold PHI or tokens)."""
    if not isinstance(error, RequestValidationError):
        raise error
    details = [
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
    ]
    return JSONResponse(status_code=400, content={"error": "invalid CDS Hooks request", "details": details})


async def _precondition_failed(request: Request, error: Exception) -> JSONResponse:
    """412, as CDS Hooks says, when the hook needs the Patient and it can be had neither way."""
    if not isinstance(error, PatientUnavailable):
        raise error
    log.info("CDS call without a patient", extra={"code": "412"})
    return JSONResponse(status_code=412, content={"error": str(error)})


async def _store_unavailable(request: Request, error: Exception) -> JSONResponse:
    """503 when Redis (the precomputed results, the JWT replay store) cannot be reached: the EHR may retry, and
    the call is never answered as if the patient had no result."""
    if not isinstance(error, redis.RedisError):
        raise error
    log.error("CDS call failed: the results store is unavailable (%s)", type(error).__name__)
    return JSONResponse(status_code=503, content={"error": "results store unavailable"}, headers={"Retry-After": "5"})


def create_app(
    redis_client: redis.Redis, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ingestion: Ingestion | None = None, patient_identifier_system: str = FhirSection().patient_identifier_system,
    trusted_issuers: Sequence[TrustedIssuer] = (), public_url: str = CdsSection().base_url,
    clock_skew_s: int = CdsSection().clock_skew_s, order_lookback_days: int = CdsSection().order_lookback_days,
    fhir_api: FhirApi | None = None, sessions: sessionmaker[Session] | None = None,
    readiness_timeout_s: float = CdsSection().redis_timeout_s, audit: AuditTrail | None = None,
) -> FastAPI:
    """The CDS Hooks application reading views from (and writing feedback to) `redis_client`; given
    `ingestion`, it also serves the STOW-RS door under /dicomweb (hilum.ingestion.stow), and given `fhir_api`,
    the FHIR R4 read API under /fhir (hilum.fhir_api.app).

    Service calls and feedback need a JWT from one of `trusted_issuers` (none: every call is refused) whose
    aud is `public_url` + "/cds-services/" + the service id; used jtis are kept in `redis_client`.
    /healthz, /readyz (Redis, and the database of `sessions` when given) and /metrics need no JWT and are left
    out of the OpenAPI schema. Given `audit`, every call that reads a patient's result is recorded as an AuditEvent
    (pushed onto the audit spool in `redis_client`) before it is answered (503 when it cannot be).
    """
    app = fastapi_app(title="Hilum CDS Hooks", version="2.0")
    app.state.cds = CdsState(redis=redis_client, clock=clock, mrn_system=patient_identifier_system,
                             public_url=public_url.rstrip("/"), order_lookback_days=order_lookback_days,
                             sessions=sessions, readiness_timeout_s=readiness_timeout_s,
                             audit=AuditSpool(redis_client, audit) if audit is not None else None)
    app.state.jwt_verifier = JwtVerifier(trusted_issuers, public_url, redis_client, clock_skew_s=clock_skew_s)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(Unauthorized, unauthorized_response)
    app.add_exception_handler(PatientUnavailable, _precondition_failed)
    app.add_exception_handler(redis.RedisError, _store_unavailable)
    # Browser-based EHRs call from their own origin; the bearer JWT, not a cookie, is what authenticates.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"],
                       allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(RequestLatencyMiddleware)  # outermost of the two: CORS preflights are timed too
    app.include_router(router)
    if ingestion is not None:  # imported only then: the CDS Hooks service alone needs no DICOM code
        from hilum.ingestion.stow import DICOMWEB_PREFIX, stow_router

        app.include_router(stow_router(ingestion), prefix=DICOMWEB_PREFIX)
    if fhir_api is not None:
        from hilum.fhir_api.app import include_fhir_api

        include_fhir_api(app, fhir_api)
    return app
