"""The FHIR R4 read API's HTTP door under /fhir: metadata, read, vread, search, and the SMART token endpoint.

Handlers are plain functions FastAPI runs on worker threads (each does one short database read); the two
that read a form body await it first. Every failure answers an OperationOutcome with its HTTP status.
Responses are application/fhir+json; searchset entries carry stored JSON as it is, never re-serialised.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.spool import AuditSpool
from hilum.audit.trail import audit_trail
from hilum.common.fastapi_app import fastapi_app
from hilum.common.fhir.audit_event import READ as READ_INTERACTION
from hilum.common.fhir.audit_event import SEARCH as SEARCH_INTERACTION
from hilum.common.fhir.audit_event import VREAD as VREAD_INTERACTION
from hilum.common.fhir.audit_event import AuditRecord, Code
from hilum.common.settings import HilumSettings
from hilum.fhir_api.access_audit import access_record, patients_of
from hilum.fhir_api.auth import (
    READ,
    SEARCH,
    AccessDenied,
    OAuthError,
    SmartAuth,
    check_open_mode,
    smart_configuration,
)
from hilum.fhir_api.dates import http_date, to_us
from hilum.fhir_api.search import DATED_TYPES, INCLUDES, SEARCHABLE_TYPES, SearchError, SearchResult, search
from hilum.fhir_api.store import ID_PATTERN, StoredVersion, read_current, read_version

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
PREFIX = "/fhir"
TOKEN_PATH = "/auth/token"
STORED_TYPES = ("Patient", "ImagingStudy", "Device", "Observation", "DiagnosticReport", "Provenance", "AuditEvent")
AUDIT_PARAMS = [("_id", "token"), ("_lastUpdated", "date"), ("date", "date"), ("patient", "reference"),
                ("type", "token"), ("subtype", "token"), ("action", "token"), ("outcome", "token"),
                ("entity", "reference")]
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               406: "not-supported", 410: "deleted", 415: "not-supported", 503: "transient"}


class FhirError(Exception):
    """A call answered with an OperationOutcome: HTTP status, issue code and a diagnostics text (no PHI)."""

    def __init__(self, status: int, diagnostics: str, code: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status, self.diagnostics = status, diagnostics
        self.code = code or ISSUE_CODES.get(status, "processing")
        self.headers = headers or {}


@dataclass
class FhirApi:
    """What the API's handlers use: database sessions, the token checks, the audit spool every read and search is
    recorded on, page sizes, the clock, and the base URL clients see (empty: taken from each request)."""

    sessions: sessionmaker[Session]
    auth: SmartAuth
    audit: AuditSpool
    default_page_size: int = 50
    max_page_size: int = 500
    public_url: str = ""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def base_url(self, request: Request) -> str:
        """The API's base URL, e.g. http://127.0.0.1:8080/fhir (no trailing slash)."""
        return (self.public_url or str(request.base_url)).rstrip("/") + PREFIX


def operation_outcome(status: int, diagnostics: str, code: str = "", severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code or ISSUE_CODES.get(status, "processing"),
                       "diagnostics": diagnostics}]}


def _error_response(error: Exception) -> Response:
    if isinstance(error, FhirError):
        status, body, headers = error.status, operation_outcome(error.status, error.diagnostics, error.code), \
            error.headers
    elif isinstance(error, AccessDenied):
        status, headers = error.status, {"WWW-Authenticate": error.www_authenticate}
        body = operation_outcome(error.status, error.description)
    elif isinstance(error, SearchError):
        status, body, headers = 400, operation_outcome(400, str(error)), {}
    else:
        raise error
    return JSONResponse(body, status_code=status, headers=headers, media_type=FHIR_JSON)


def _fhir_json(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(text, status_code=status, headers=headers, media_type=FHIR_JSON)


def _check_format(request: Request) -> None:
    """406 unless the caller accepts JSON (Accept, or _format)."""
    requested = request.query_params.get("_format")
    if requested is not None and requested.split(";")[0].strip() not in JSON_FORMATS:
        raise FhirError(406, "only JSON is supported (_format=json)")
    accept = request.headers.get("accept", "")
    if accept:
        kinds = {part.split(";")[0].strip() for part in accept.split(",")}
        if not kinds & (JSON_FORMATS | {"*/*", "application/*"}):
            raise FhirError(406, "only application/fhir+json (or application/json) is supported")


def _check_type(resource_type: str) -> None:
    if resource_type not in STORED_TYPES:
        raise FhirError(404, "this server does not hold that resource type", code="not-supported")


def _served_headers(version: StoredVersion) -> dict[str, str]:
    return {"ETag": f'W/"{version.version_id}"', "Last-Modified": http_date(version.last_updated_us),
            "Content-Location": f"{version.resource_type}/{version.resource_id}/_history/{version.version_id}"}


def _not_modified(request: Request, version: StoredVersion) -> bool:
    wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")}
    return f'"{version.version_id}"' in wanted or "*" in wanted


def _record_access(api: FhirApi, record: AuditRecord) -> None:
    """Record a call's AuditEvent before it is answered: a call whose record cannot be written is refused (503)."""
    try:
        api.audit.record(record)
    except redis.RedisError as exc:
        log.error("FHIR API call refused: its audit record could not be written",
                  extra={"error_type": type(exc).__name__})
        raise FhirError(503, "the audit trail could not be written; try again later") from None


def _serve(request: Request, version: StoredVersion | None) -> Response:
    if version is None:
        raise FhirError(404, "no such resource")
    if version.deleted:
        raise FhirError(410, "the resource was deleted", headers={"ETag": f'W/"{version.version_id}"'})
    headers = _served_headers(version)
    if _not_modified(request, version):
        return Response(status_code=304, headers=headers)
    return _fhir_json(version.text, headers=headers)


def _serve_audited(api: FhirApi, request: Request, version: StoredVersion | None, interaction: Code, client_id: str,
                   reference: str) -> Response:
    """_serve, and the read recorded in the audit trail (only what is served: a 404 or 410 records nothing)."""
    response = _serve(request, version)
    _record_access(api, access_record(request, interaction, client_id, resources=(reference,),
                                      patients=patients_of([version.text] if version else [])))
    return response


def capability_statement(base_url: str, now: datetime) -> dict[str, Any]:
    """The CapabilityStatement: exactly the interactions, search parameters and _include values served."""
    common = [("_id", "token"), ("_lastUpdated", "date"), ("identifier", "token"), ("status", "token"),
              ("patient", "reference"), ("subject", "reference")]
    resources = []
    for resource_type in STORED_TYPES:
        entry: dict[str, Any] = {"type": resource_type, "interaction": [{"code": "read"}, {"code": "vread"}],
                                 "versioning": "versioned", "readHistory": False, "updateCreate": False,
                                 "conditionalRead": "not-supported"}
        if resource_type == "AuditEvent":
            entry["interaction"].append({"code": "search-type"})
            entry["searchParam"] = [{"name": name, "type": kind} for name, kind in AUDIT_PARAMS]
        elif resource_type in SEARCHABLE_TYPES:
            params = list(common)
            params += [("date", "date")] if resource_type in DATED_TYPES else []
            params += [("code", "token")] if resource_type in ("DiagnosticReport", "Observation") else []
            entry["interaction"].append({"code": "search-type"})
            entry["searchInclude"] = ["*", *(f"{resource_type}:{name}" for name in INCLUDES[resource_type])]
            entry["searchParam"] = [{"name": name, "type": kind} for name, kind in params]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement", "id": "hilum-fhir-read-api", "status": "active",
        "date": now.date().isoformat(), "publisher": "Hilum", "kind": "instance",
        "software": {"name": "Hilum FHIR read API"},
        "implementation": {"description": "Hilum's chest radiograph AI results (read-only)", "url": base_url},
        "fhirVersion": "4.0.1", "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Search results page with keyset cursors (_cursor in next/previous links); "
                             "_sort=_lastUpdated|-_lastUpdated; _count; _total=accurate; _summary=count.",
            "security": {
                "cors": True,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                         "code": "SMART-on-FHIR"}]}],
                "description": "SMART Backend Services: private_key_jwt (RS384/ES384) at the token endpoint; "
                               "system scopes, e.g. system/*.rs.",
                "extension": [{"url": OAUTH_URIS,
                               "extension": [{"url": "token", "valueUri": f"{base_url}{TOKEN_PATH}"}]}],
            },
            "resource": resources,
        }],
    }


def _searchset(api: FhirApi, request: Request, resource_type: str, result: SearchResult,
               cursor: str | None) -> str:
    """The searchset Bundle's JSON, stored resource text spliced in as it is."""
    base = api.base_url(request)

    def link(relation: str, page_cursor: str | None) -> dict[str, str]:
        params = list(result.query) + ([("_cursor", page_cursor)] if page_cursor else [])
        return {"relation": relation, "url": f"{base}/{resource_type}" + (f"?{urlencode(params)}" if params else "")}

    links = [link("self", cursor), link("first", None)]
    if result.previous_cursor:
        links.append(link("previous", result.previous_cursor))
    if result.next_cursor:
        links.append(link("next", result.next_cursor))
    head: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        head["total"] = result.total
    head["link"] = links
    entries = [
        f'{{"fullUrl":{json.dumps(f"{base}/{hit.resource_type}/{hit.resource_id}")},"resource":{hit.text},'
        f'"search":{{"mode":"{mode}"}}}}'
        for mode, hits in (("match", result.matches), ("include", result.includes)) for hit in hits
    ]
    if result.ignored:
        outcome = operation_outcome(200, "ignored search parameters: " + ", ".join(sorted(set(result.ignored))),
                                    code="not-supported", severity="warning")
        entries.append(json.dumps({"resource": outcome, "search": {"mode": "outcome"}}))
    return json.dumps(head)[:-1] + ',"entry":[' + ",".join(entries) + "]}"


def _lenient(request: Request) -> bool:
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    return "handling=lenient" in prefer.split(";") or "handling=lenient" in prefer.split(",")


def _run_search(api: FhirApi, request: Request, resource_type: str, params: list[tuple[str, str]]) -> Response:
    _check_format(request)
    if resource_type not in SEARCHABLE_TYPES:
        _check_type(resource_type)
        raise FhirError(400, f"search is not supported for {resource_type}", code="not-supported")
    client_id, scopes = api.auth.check_client(request.headers.get("authorization"), resource_type, SEARCH)
    with api.sessions() as session:
        result = search(session, resource_type, params, default_count=api.default_page_size,
                        max_count=api.max_page_size, now_us=to_us(api.clock()), lenient=_lenient(request))
    if scopes is not None:  # included resources only of types the token may see
        visible = [hit for hit in result.includes
                   if any(s.covers(hit.resource_type, READ) or s.covers(hit.resource_type, SEARCH) for s in scopes)]
        result = SearchResult(result.matches, visible, result.total, result.next_cursor, result.previous_cursor,
                              result.query, result.count, result.ignored)
    served = [hit.text for hit in (*result.matches, *result.includes)]
    _record_access(api, access_record(request, SEARCH_INTERACTION, client_id, patients=patients_of(served),
                                      query=f"{resource_type}?{urlencode(params)}"))
    cursor = next((value for name, value in reversed(params) if name == "_cursor"), None)
    return _fhir_json(_searchset(api, request, resource_type, result, cursor))


def _form(body: bytes, request: Request) -> list[tuple[str, str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if body and content_type != "application/x-www-form-urlencoded":
        raise FhirError(415, "the body must be application/x-www-form-urlencoded")
    try:
        return parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise FhirError(400, "the body is not UTF-8") from None


def fhir_router(api: FhirApi) -> APIRouter:
    """The API's routes, to be mounted at /fhir."""
    router = APIRouter()

    @router.get("/metadata")
    def metadata(request: Request) -> Response:
        """The CapabilityStatement (open: no token needed)."""
        try:
            _check_format(request)
            return _fhir_json(json.dumps(capability_statement(api.base_url(request), api.clock())))
        except FhirError as error:
            return _error_response(error)

    @router.get("/.well-known/smart-configuration")
    def smart_config(request: Request) -> JSONResponse:
        """SMART discovery: the token endpoint and what it accepts."""
        return JSONResponse(smart_configuration(api.base_url(request) + TOKEN_PATH, SEARCHABLE_TYPES))

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        """OAuth 2.0 client_credentials with a private_key_jwt client assertion (SMART Backend Services)."""
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        body = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        try:
            if content_type != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
            form = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
            grant = await run_in_threadpool(api.auth.issue_token, form, api.base_url(request) + TOKEN_PATH)
        except OAuthError as refused:
            log.warning("FHIR API token refused (%s)", refused.error, extra={"code": refused.error})
            return JSONResponse({"error": refused.error, "error_description": refused.description}, status_code=400,
                                headers=no_store)
        return JSONResponse(grant.to_json(), headers=no_store)

    @router.post("/{resource_type}/_search")
    async def search_by_post(request: Request, resource_type: str) -> Response:
        """Search with the parameters in the form body (and the query)."""
        try:
            params = list(request.query_params.multi_items()) + _form(await request.body(), request)
            return await run_in_threadpool(_run_search, api, request, resource_type, params)
        except (FhirError, AccessDenied, SearchError) as error:
            return _error_response(error)

    @router.get("/{resource_type}")
    def search_by_get(request: Request, resource_type: str) -> Response:
        """Search: a searchset Bundle of one page of matches (and _include'd resources)."""
        try:
            return _run_search(api, request, resource_type, list(request.query_params.multi_items()))
        except (FhirError, AccessDenied, SearchError) as error:
            return _error_response(error)

    @router.get("/{resource_type}/{resource_id}")
    def read(request: Request, resource_type: str, resource_id: str) -> Response:
        """The current version (ETag, Last-Modified; If-None-Match → 304; deleted → 410)."""
        try:
            _check_format(request)
            _check_type(resource_type)
            client_id, _ = api.auth.check_client(request.headers.get("authorization"), resource_type, READ)
            if not ID_PATTERN.fullmatch(resource_id):
                raise FhirError(404, "no such resource")
            with api.sessions() as session:
                version = read_current(session, resource_type, resource_id)
            return _serve_audited(api, request, version, READ_INTERACTION, client_id,
                                  f"{resource_type}/{resource_id}")
        except (FhirError, AccessDenied) as error:
            return _error_response(error)

    @router.get("/{resource_type}/{resource_id}/_history/{version_id}")
    def vread(request: Request, resource_type: str, resource_id: str, version_id: str) -> Response:
        """One version of a resource (a deleted version → 410)."""
        try:
            _check_format(request)
            _check_type(resource_type)
            client_id, _ = api.auth.check_client(request.headers.get("authorization"), resource_type, READ)
            if not ID_PATTERN.fullmatch(resource_id) or not re.fullmatch(r"[1-9][0-9]{0,9}", version_id):
                raise FhirError(404, "no such version")
            with api.sessions() as session:
                version = read_version(session, resource_type, resource_id, int(version_id))
            return _serve_audited(api, request, version, VREAD_INTERACTION, client_id,
                                  f"{resource_type}/{resource_id}/_history/{version_id}")
        except (FhirError, AccessDenied) as error:
            return _error_response(error)

    @router.api_route("/{resource_type}", methods=["POST", "PUT", "PATCH", "DELETE"])
    @router.api_route("/{resource_type}/{resource_id}", methods=["POST", "PUT", "PATCH", "DELETE"])
    @router.api_route("/{resource_type}/{resource_id}/_history/{version_id}",
                      methods=["POST", "PUT", "PATCH", "DELETE"])
    def read_only(request: Request) -> Response:
        """This API is read-only: create, update, patch and delete are not allowed."""
        return _error_response(FhirError(405, "this FHIR API is read-only", headers={"Allow": "GET"}))

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(request: Request) -> Response:
        """Anything else under /fhir."""
        return _error_response(FhirError(404, "no such endpoint in this FHIR API", code="not-supported"))

    return router


def include_fhir_api(app: FastAPI, api: FhirApi) -> None:
    """Serve the API from `app` under /fhir."""
    app.include_router(fhir_router(api), prefix=PREFIX)


def create_fhir_app(api: FhirApi) -> FastAPI:
    """A stand-alone application serving only the FHIR read API (tests and benchmarks)."""
    app = fastapi_app(title="Hilum FHIR R4 read API", version="4.0.1")
    include_fhir_api(app, api)
    return app


def fhir_api_from_settings(settings: HilumSettings, redis_client: redis.Redis,
                           sessions: sessionmaker[Session]) -> FhirApi:
    """The API as settings describe it; open mode is refused (OpenModeRefused) unless the CDS host is loopback."""
    section = settings.fhir_api
    check_open_mode(section.open_on_loopback, settings.cds.host)
    auth = SmartAuth(section.clients, redis_client, token_lifetime_s=section.token_lifetime_s,
                     open_mode=section.open_on_loopback, clock_skew_s=settings.cds.clock_skew_s)
    return FhirApi(sessions=sessions, auth=auth, default_page_size=section.default_page_size,
                   max_page_size=section.max_page_size, public_url=settings.cds.public_url,
                   audit=AuditSpool(redis_client, audit_trail(settings, "fhir-api")))
