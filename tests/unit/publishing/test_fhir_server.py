"""Publishing to a real FHIR server (Medplum) through a fault-injecting proxy: transactions, the failure
classes the delivery loop retries or gives up on, and versioned status changes under a concurrent writer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hilum.common.errors import PermanentError, TransientError
from hilum.common.settings import FhirDestination
from hilum.publishing.fhir_server import MAX_CONFLICT_RETRIES, post_transaction, set_report_status
from hilum.runtime.fhir_peer import FhirPeer
from hilum.runtime.ports import free_port
from tests.fault_proxy import DROP, PASS, RESET, FaultProxy, before, delay, respond

REPORT_SYSTEM = "urn:test:report"
# Straight to the peer, past the proxy: what the server holds, and the other system's concurrent edits.
DIRECT = httpx.Client(timeout=10.0)


@pytest.fixture
def proxy(fhir_peer: FhirPeer) -> Iterator[FaultProxy]:
    with FaultProxy(fhir_peer.base_url) as server:
        yield server


@pytest.fixture
def destination(proxy: FaultProxy) -> FhirDestination:
    return FhirDestination(url=proxy.base_url, timeout_s=1.0)


def report_bundle(report_value: str) -> dict[str, Any]:
    """Patient + DiagnosticReport, both conditional creates on their identifiers; the report refers to the patient."""
    patient_url, report_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient_url,
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": report_value}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:test:mrn|{report_value}"}},
        {"fullUrl": report_url,
         "resource": {"resourceType": "DiagnosticReport", "status": "preliminary", "code": {"text": "XR chest"},
                      "subject": {"reference": patient_url},
                      "identifier": [{"system": REPORT_SYSTEM, "value": report_value}]},
         "request": {"method": "POST", "url": "DiagnosticReport",
                     "ifNoneExist": f"identifier={REPORT_SYSTEM}|{report_value}"}},
    ]}


def read_report(peer: FhirPeer, value: str) -> dict[str, Any]:
    found = DIRECT.get(f"{peer.base_url}/DiagnosticReport", params={"identifier": f"{REPORT_SYSTEM}|{value}"}).json()
    assert len(found["entry"]) == 1
    report: dict[str, Any] = found["entry"][0]["resource"]
    return report


def outcome(text: str) -> bytes:
    return json.dumps({"resourceType": "OperationOutcome",
                       "issue": [{"severity": "error", "code": "exception", "diagnostics": text}]}).encode()


def test_a_transaction_is_published_and_a_second_post_creates_nothing(
    fhir_peer: FhirPeer, proxy: FaultProxy, destination: FhirDestination
) -> None:
    value = str(uuid.uuid4())
    with httpx.Client() as client:
        first = post_transaction(report_bundle(value), destination, client)
        second = post_transaction(report_bundle(value), destination, client)
    assert first.created == 2 and [s[:3] for s in first.statuses] == ["201", "201"]
    assert second.created == 0 and [s[:3] for s in second.statuses] == ["200", "200"]
    assert first.locations[0].startswith("Patient/") and first.locations[1].startswith("DiagnosticReport/")
    assert second.locations == first.locations
    patient_id = first.locations[0].split("/")[1]
    assert read_report(fhir_peer, value)["subject"]["reference"] == f"Patient/{patient_id}"
    assert proxy.requests_seen == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient(status: int, proxy: FaultProxy, destination: FhirDestination) -> None:
    proxy.script(respond(status, outcome("database unavailable"), {"Content-Type": "application/fhir+json"}))
    with pytest.raises(TransientError, match=f"HTTP {status}: database unavailable") as raised:
        post_transaction(report_bundle(str(uuid.uuid4())), destination)
    assert raised.value.retry_after_s is None


@pytest.mark.parametrize("retry_after", ["7", "date"])
def test_too_many_requests_is_transient_and_honours_retry_after(
    retry_after: str, proxy: FaultProxy, destination: FhirDestination
) -> None:
    header = retry_after if retry_after != "date" else format_datetime(datetime.now(UTC) + timedelta(seconds=30),
                                                                        usegmt=True)
    proxy.script(respond(429, b"slow down", {"Retry-After": header}))
    with pytest.raises(TransientError, match="HTTP 429") as raised:
        post_transaction(report_bundle(str(uuid.uuid4())), destination)
    assert raised.value.retry_after_s is not None
    assert raised.value.retry_after_s == 7.0 if retry_after == "7" else 25 <= raised.value.retry_after_s <= 30


def test_a_slow_server_is_a_transient_timeout(proxy: FaultProxy, destination: FhirDestination) -> None:
    proxy.script(delay(2.0))
    with pytest.raises(TransientError, match=r"did not answer within 1 s"):
        post_transaction(report_bundle(str(uuid.uuid4())), destination)


def test_a_dropped_connection_is_transient(proxy: FaultProxy, destination: FhirDestination) -> None:
    proxy.script(DROP)
    with pytest.raises(TransientError, match="dropped the connection without answering"):
        post_transaction(report_bundle(str(uuid.uuid4())), destination)


def test_a_reset_connection_is_transient(proxy: FaultProxy, destination: FhirDestination) -> None:
    proxy.script(RESET)
    with pytest.raises(TransientError, match="FHIR server"):
        post_transaction(report_bundle(str(uuid.uuid4())), destination)
    assert proxy.requests_seen == 1


def test_a_refused_connection_is_transient() -> None:
    nowhere = FhirDestination(url=f"http://127.0.0.1:{free_port()}/fhir/R4", timeout_s=1.0)
    with pytest.raises(TransientError, match="could not be reached"):
        post_transaction(report_bundle(str(uuid.uuid4())), nowhere)


def test_a_refused_bundle_is_permanent_with_the_servers_diagnostics(destination: FhirDestination) -> None:
    # Medplum refuses a transaction of more than 8 entries once any entry is conditional.
    bundle = report_bundle(str(uuid.uuid4()))
    bundle["entry"] = [report_bundle(str(uuid.uuid4()))["entry"][0] for _ in range(9)]
    with pytest.raises(PermanentError, match=r"HTTP 400: .*too many entries"):
        post_transaction(bundle, destination)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_permanent(status: int, proxy: FaultProxy, destination: FhirDestination) -> None:
    proxy.script(respond(status, outcome("x" * 1000)))
    with pytest.raises(PermanentError, match=f"HTTP {status}: x+…$") as raised:
        post_transaction(report_bundle(str(uuid.uuid4())), destination)
    assert len(str(raised.value)) < 400  # diagnostics are trimmed


def test_a_failed_entry_in_a_200_answer_is_an_error(proxy: FaultProxy, destination: FhirDestination) -> None:
    answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "201 Created", "location": "Patient/1"}},
        {"response": {"status": "422", "outcome": json.loads(outcome("code is required"))}},
    ]}
    proxy.script(respond(200, json.dumps(answer).encode()))
    with pytest.raises(PermanentError, match=r"entry 1 \(POST DiagnosticReport\) with status 422: code is required"):
        post_transaction(report_bundle(str(uuid.uuid4())), destination)


def test_an_unreadable_answer_is_transient(proxy: FaultProxy, destination: FhirDestination) -> None:
    proxy.script(respond(200, b"<html>gateway</html>"))
    with pytest.raises(TransientError, match="not JSON"):
        post_transaction(report_bundle(str(uuid.uuid4())), destination)


def test_no_configured_server_is_permanent() -> None:
    with pytest.raises(PermanentError, match="no FHIR server is configured"):
        post_transaction(report_bundle("x"), FhirDestination())


def test_the_report_status_is_changed_with_a_versioned_update(
    fhir_peer: FhirPeer, proxy: FaultProxy, destination: FhirDestination
) -> None:
    value = str(uuid.uuid4())
    post_transaction(report_bundle(value), destination)
    old_version = read_report(fhir_peer, value)["meta"]["versionId"]
    with httpx.Client() as client:
        version = set_report_status((REPORT_SYSTEM, value), "final", destination, client)
        assert version != old_version
        assert read_report(fhir_peer, value)["status"] == "final"
        assert read_report(fhir_peer, value)["meta"]["versionId"] == version
        seen = proxy.requests_seen
        assert set_report_status((REPORT_SYSTEM, value), "final", destination, client) == version
        assert proxy.requests_seen == seen + 1  # already final: one search, no update


def test_a_concurrent_update_is_reread_and_retried(
    fhir_peer: FhirPeer, proxy: FaultProxy, destination: FhirDestination
) -> None:
    value = str(uuid.uuid4())
    post_transaction(report_bundle(value), destination)

    def edit_elsewhere() -> None:
        report = read_report(fhir_peer, value)
        report["conclusion"] = "edited by another system"
        assert DIRECT.put(f"{fhir_peer.base_url}/DiagnosticReport/{report['id']}", json=report).status_code == 200

    seen = proxy.requests_seen
    proxy.script(PASS, before(edit_elsewhere))  # search passes; the PUT lands after a concurrent edit: 412
    version = set_report_status((REPORT_SYSTEM, value), "amended", destination)
    report = read_report(fhir_peer, value)
    assert report["status"] == "amended" and report["conclusion"] == "edited by another system"
    assert report["meta"]["versionId"] == version
    assert proxy.requests_seen - seen == 4  # search, PUT (412), re-read, PUT


def test_endless_concurrent_updates_end_in_a_transient_error(
    fhir_peer: FhirPeer, proxy: FaultProxy, destination: FhirDestination
) -> None:
    value = str(uuid.uuid4())
    post_transaction(report_bundle(value), destination)
    edits = iter(range(100))

    def edit_elsewhere() -> None:
        report = read_report(fhir_peer, value)
        report["conclusion"] = f"edit {next(edits)}"
        DIRECT.put(f"{fhir_peer.base_url}/DiagnosticReport/{report['id']}", json=report).raise_for_status()

    proxy.script(PASS, *[fault for _ in range(MAX_CONFLICT_RETRIES + 1) for fault in (before(edit_elsewhere), PASS)])
    with pytest.raises(TransientError, match="changed under every one"):
        set_report_status((REPORT_SYSTEM, value), "cancelled", destination)
    assert read_report(fhir_peer, value)["status"] == "preliminary" and proxy.pending() == 0


def test_a_missing_report_is_permanent(destination: FhirDestination) -> None:
    with pytest.raises(PermanentError, match="no DiagnosticReport"):
        set_report_status((REPORT_SYSTEM, str(uuid.uuid4())), "cancelled", destination)


def test_only_published_statuses_may_be_set(destination: FhirDestination) -> None:
    with pytest.raises(ValueError, match="preliminary"):
        set_report_status((REPORT_SYSTEM, "x"), "preliminary", destination)


def test_the_bearer_token_is_sent(tmp_path: Path, fhir_peer: FhirPeer) -> None:
    seen: list[str] = []

    def remember(request: httpx.Request) -> None:
        seen.append(request.headers.get("Authorization", ""))

    destination = FhirDestination(url=fhir_peer.base_url, bearer_token="s3cret", timeout_s=5.0)
    with httpx.Client(event_hooks={"request": [remember]}) as client:
        post_transaction(report_bundle(str(uuid.uuid4())), destination, client)
    assert seen == ["Bearer s3cret"]
