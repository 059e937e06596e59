"""Publishing to a hospital's FHIR R4 server: POST a transaction Bundle, and change a published report's status.

Every failure is classified for the delivery loop: TransientError (unreachable, dropped, timed out, 408, 429,
5xx: retry later) or PermanentError (any other 4xx: the server will never accept it). No PHI in messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from hilum.common.errors import PermanentError, TransientError
from hilum.common.fhir.references import escape_token
from hilum.common.http_failures import is_transient_status, transport_failure
from hilum.common.settings import FhirDestination

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
MAX_DIAGNOSTICS_CHARS = 300
# How often set_report_status re-reads and retries after 412 (the report changed between read and write).
MAX_CONFLICT_RETRIES = 3
REPORT_STATUSES = frozenset({"final", "amended", "corrected", "appended", "cancelled", "entered-in-error"})


@dataclass(frozen=True)
class TransactionReceipt:
    """The server's answer to a transaction: per entry, in bundle order, its status and the resource's location."""

    statuses: tuple[str, ...]  # e.g. "201 Created", "200"
    locations: tuple[str, ...]  # e.g. "Patient/123/_history/1"; "" where the server gave none

    @property
    def created(self) -> int:
        """How many entries created a resource (status 201)."""
        return sum(1 for status in self.statuses if status.startswith("201"))


def post_transaction(
    bundle: dict[str, Any], destination: FhirDestination, client: httpx.Client | None = None
) -> TransactionReceipt:
    """POST a transaction Bundle to the destination's base URL; every entry must answer 2xx.

    Raises TransientError or PermanentError as the failure deserves (see the module docstring).
    """
    entries = bundle.get("entry") or []
    with _client(client) as http:
        response = _send(http, "POST", _base(destination), destination, json_body=bundle)
    body = _json(response, "transaction-response")
    if body.get("resourceType") != "Bundle" or not isinstance(body.get("entry"), list):
        raise TransientError(f"FHIR server answered HTTP {response.status_code} without a transaction-response Bundle")
    answered = body["entry"]
    if len(answered) != len(entries):
        raise PermanentError(f"FHIR server answered {len(answered)} entries for a transaction of {len(entries)}")
    statuses: list[str] = []
    locations: list[str] = []
    for index, entry in enumerate(answered):
        result = entry.get("response") or {}
        status = str(result.get("status", ""))
        if not status.startswith("2"):
            _raise_for_entry(index, entries[index] if index < len(entries) else {}, status, result.get("outcome"))
        statuses.append(status)
        locations.append(str(result.get("location") or ""))
    receipt = TransactionReceipt(statuses=tuple(statuses), locations=tuple(locations))
    log.info("FHIR transaction published: %d entries, %d created", len(statuses), receipt.created)
    return receipt


def set_report_status(
    report_identifier: tuple[str, str], status: str, destination: FhirDestination, client: httpx.Client | None = None
) -> str:
    """Set the status of the DiagnosticReport with identifier (system, value), by a versioned PUT (If-Match).

    On 412 (it changed between our read and our write) it re-reads and retries, at most MAX_CONFLICT_RETRIES
    times. Returns the report's new version id (its current one when the status already was `status`).
    """
    if status not in REPORT_STATUSES:
        raise ValueError(f"a published report cannot be set to status {status!r}")
    system, value = report_identifier
    base = _base(destination)
    with _client(client) as http:
        report = _find_report(http, base, destination, f"{escape_token(system)}|{escape_token(value)}")
        for _attempt in range(MAX_CONFLICT_RETRIES + 1):
            version = str((report.get("meta") or {}).get("versionId") or "")
            if report.get("status") == status and version:
                return version
            if not version:
                raise PermanentError("FHIR server gave the DiagnosticReport no meta.versionId; cannot update it safely")
            url = f"{base}/DiagnosticReport/{report['id']}"
            updated = {**report, "status": status}
            response = _send(http, "PUT", url, destination, json_body=updated, if_match=f'W/"{version}"',
                             accept_statuses=(412,))
            if response.status_code != 412:
                new_version = _version_of(response)
                log.info("FHIR DiagnosticReport status set to %s (version %s)", status, new_version)
                return new_version
            report = _json(_send(http, "GET", url, destination), "DiagnosticReport")
    raise TransientError(f"the DiagnosticReport changed under every one of {MAX_CONFLICT_RETRIES + 1} updates (412)")


def _find_report(http: httpx.Client, base: str, destination: FhirDestination, token: str) -> dict[str, Any]:
    """The one DiagnosticReport whose identifier matches the token search value `token`."""
    response = _send(http, "GET", f"{base}/DiagnosticReport", destination, params={"identifier": token})
    matches = [entry.get("resource") for entry in _json(response, "searchset").get("entry") or []
               if (entry.get("search") or {}).get("mode", "match") == "match"]
    reports = [match for match in matches
               if isinstance(match, dict) and match.get("resourceType") == "DiagnosticReport"]
    if not reports:
        raise PermanentError("FHIR server has no DiagnosticReport with the report's identifier")
    if len(reports) > 1:
        raise PermanentError(f"FHIR server has {len(reports)} DiagnosticReports with the report's identifier")
    return reports[0]


@contextmanager
def _client(client: httpx.Client | None) -> Iterator[httpx.Client]:
    """The given client (left open), or a new one closed afterwards."""
    if client is not None:
        yield client
        return
    with httpx.Client() as own:
        yield own


def _base(destination: FhirDestination) -> str:
    if not destination.url:
        raise PermanentError("no FHIR server is configured (publish.fhir_server.url is empty)")
    return destination.url.rstrip("/")


def _send(
    http: httpx.Client,
    method: str,
    url: str,
    destination: FhirDestination,
    *,
    json_body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    if_match: str = "",
    accept_statuses: tuple[int, ...] = (),
) -> httpx.Response:
    """One request; transport failures and non-2xx answers (other than accept_statuses) become Hilum's errors."""
    headers = {"Accept": FHIR_JSON}
    if json_body is not None:
        headers["Content-Type"] = FHIR_JSON
    if destination.bearer_token:
        headers["Authorization"] = f"Bearer {destination.bearer_token}"
    if if_match:
        headers["If-Match"] = if_match
    what = f"FHIR server ({method} {httpx.URL(url).path})"
    try:
        response = http.request(method, url, json=json_body, params=params, headers=headers,
                                timeout=destination.timeout_s)
    except httpx.TransportError as exc:
        raise transport_failure(exc, what, destination.timeout_s) from exc
    status = response.status_code
    if 200 <= status < 300 or status in accept_statuses:
        return response
    diagnostics = _diagnostics(response)
    if is_transient_status(status):
        retry_after = _retry_after_s(response.headers.get("Retry-After")) if status in (429, 503) else None
        raise TransientError(f"{what} answered HTTP {status}{diagnostics}", retry_after_s=retry_after)
    raise PermanentError(f"{what} refused the request: HTTP {status}{diagnostics}")


def _raise_for_entry(index: int, entry: Mapping[str, Any], status: str, outcome: Any) -> None:
    """Raise for one transaction entry that did not succeed (a server that answers a transaction as a batch)."""
    request = entry.get("request") or {}
    what = f"entry {index} ({request.get('method', '?')} {str(request.get('url', '?')).split('?')[0]})"
    diagnostics = _outcome_text(outcome)
    detail = f": {diagnostics}" if diagnostics else ""
    code = status.split(" ", 1)[0]
    if code in ("408", "429") or code.startswith("5") or not code:
        raise TransientError(f"FHIR server failed transaction {what} with status {status or 'none'}{detail}")
    raise PermanentError(f"FHIR server refused transaction {what} with status {status}{detail}")


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError(f"FHIR server's {what} answer (HTTP {response.status_code}) is not JSON") from exc
    if not isinstance(body, dict):
        raise TransientError(f"FHIR server's {what} answer (HTTP {response.status_code}) is not a JSON object")
    return body


def _version_of(response: httpx.Response) -> str:
    """The new version id of a written resource: meta.versionId of the answer, else its ETag."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    version = (body.get("meta") or {}).get("versionId") if isinstance(body, dict) else None
    if not version:
        version = response.headers.get("ETag", "").removeprefix("W/").strip('"')
    if not version:
        raise TransientError("FHIR server accepted the update but named no new version")
    return str(version)


def _diagnostics(response: httpx.Response) -> str:
    """": <OperationOutcome text>" (trimmed) when the body is an OperationOutcome, else ""."""
    try:
        body = response.json()
    except ValueError:
        return ""
    text = _outcome_text(body)
    return f": {text}" if text else ""


def _outcome_text(outcome: Any) -> str:
    """The diagnostics (or details.text) of an OperationOutcome's issues, joined and trimmed."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return ""
    texts = []
    for issue in outcome.get("issue") or []:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
            if text:
                texts.append(str(text))
    joined = "; ".join(texts)
    return joined if len(joined) <= MAX_DIAGNOSTICS_CHARS else joined[: MAX_DIAGNOSTICS_CHARS - 1] + "…"


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds to wait (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
