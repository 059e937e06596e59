"""Every FHIR API read and search is an AuditEvent (client, resources, patients, query), pushed onto the audit spool
before the call is answered; once the spool is drained into the database (the assembler's work, done here by the
test), the audit trail is itself readable and searchable through the API."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.spool import SPOOL_KEY, drain_spool
from hilum.audit.trail import AuditTrail
from tests.unit.fhir_api.backend_client import BackendClient
from tests.unit.fhir_api.conftest import issue_token
from tests.unit.fhir_api.synthetic_reports import MRN_SYSTEM, SyntheticReport, mrn

REST = "http://hl7.org/fhir/restful-interaction"


@pytest.fixture
def drain(redis_client: redis.Redis, sessions: sessionmaker[Session]) -> Callable[[], int]:
    """Moves the audit spool into the database, as the assembler's audit thread does."""
    redis_client.delete(SPOOL_KEY)
    return lambda: drain_spool(redis_client, sessions, AuditTrail("audit"))


def _events(client: TestClient, query: str, drain: Callable[[], int]) -> list[dict[str, Any]]:
    drain()
    response = client.get(f"/fhir/AuditEvent?{query}&_count=10")
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", []) if entry["search"]["mode"] == "match"]


def _query(event: dict[str, Any]) -> str:
    return next((base64.b64decode(entity["query"]).decode() for entity in event["entity"] if "query" in entity), "")


def _patients(event: dict[str, Any]) -> list[str]:
    return [entity["what"]["identifier"]["value"] for entity in event["entity"]
            if entity["role"]["code"] == "1" and "identifier" in entity["what"]]


def test_a_read_names_the_client_the_resource_and_its_patient(authed: TestClient, reports: list[SyntheticReport],
                                                              drain: Callable[[], int]) -> None:
    report_id = reports[0].resource_ids("DiagnosticReport")[0]
    assert authed.get(f"/fhir/DiagnosticReport/{report_id}").status_code == 200
    [event] = _events(authed, f"subtype={REST}|read", drain)
    assert event["type"]["code"] == "rest" and event["action"] == "R" and event["outcome"] == "0"
    requestor = next(agent for agent in event["agent"] if agent["requestor"])
    assert requestor["who"]["identifier"]["value"] == "mirth-engine"
    assert requestor["network"]["address"] == "testclient"
    assert {"what": {"reference": f"DiagnosticReport/{report_id}"}} .items() <= next(
        entity for entity in event["entity"] if entity["role"]["code"] == "4").items()
    assert _patients(event) == [mrn(0)]
    assert event["source"]["observer"]["display"] == "Hilum fhir-api"


def test_a_search_names_its_query_and_every_patient_it_returned(authed: TestClient, reports: list[SyntheticReport],
                                                                drain: Callable[[], int]) -> None:
    query = f"patient:identifier={MRN_SYSTEM}|{mrn(1)}"
    found = authed.get(f"/fhir/DiagnosticReport?{query}").json()
    assert found["entry"]
    [event] = _events(authed, f"subtype={REST}|search-type", drain)
    assert event["action"] == "E"
    assert [entity["role"]["code"] for entity in event["entity"]] == ["1", "24"]  # the patient, the query
    assert _query(event).startswith("DiagnosticReport?patient%3Aidentifier=")
    assert _patients(event) == [mrn(1)]
    everyone = authed.get("/fhir/Observation?_count=10").json()
    assert len(everyone["entry"]) > 2
    searches = _events(authed, f"subtype={REST}|search-type", drain)
    [broad] = [e for e in searches if _query(e).startswith("Observation?")]
    assert sorted(_patients(broad)) == [mrn(0), mrn(1)]
    # The searches of the audit trail are in it too (the one above could not see itself).
    assert [_query(e).split("?")[0] for e in searches] == ["DiagnosticReport", "AuditEvent", "Observation"]


def test_the_audit_trail_is_searchable_by_patient_date_and_type(authed: TestClient, reports: list[SyntheticReport],
                                                                drain: Callable[[], int]) -> None:
    for report in reports[:2]:
        assert authed.get(f"/fhir/DiagnosticReport/{report.resource_ids('DiagnosticReport')[0]}").status_code == 200
    first = _events(authed, f"patient:identifier={MRN_SYSTEM}|{mrn(0)}", drain)
    assert [_patients(event) for event in first] == [[mrn(0)]]
    assert len(_events(authed, f"patient:identifier={MRN_SYSTEM}|{mrn(1)}", drain)) == 1
    assert len(_events(authed, "type=rest&action=R&outcome=0&date=ge2020-01-01", drain)) == 2
    assert _events(authed, "date=lt2020-01-01", drain) == []
    # Reading the audit trail is itself recorded, and one event reads back by id.
    [one] = first
    assert authed.get(f"/fhir/AuditEvent/{one['id']}").json()["id"] == one["id"]
    assert len(_events(authed, f"subtype={REST}|search-type", drain)) == 4  # the four searches above


def test_the_audit_trail_needs_a_scope_covering_it(client: TestClient, backend: BackendClient,
                                                   reports: list[SyntheticReport]) -> None:
    narrow = {"Authorization": f"Bearer {issue_token(client, backend, 'system/DiagnosticReport.rs', 'reports-only')}"}
    assert client.get("/fhir/AuditEvent", headers=narrow).status_code == 403
    statement = client.get("/fhir/metadata").json()
    [audit] = [r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent"]
    assert {"patient", "date", "type", "subtype", "action", "outcome", "entity"} <= \
        {p["name"] for p in audit["searchParam"]}


def test_a_read_whose_audit_record_cannot_be_written_is_refused(authed: TestClient, reports: list[SyntheticReport],
                                                                redis_client: redis.Redis) -> None:
    report_id = reports[0].resource_ids("DiagnosticReport")[0]
    before = redis_client.llen(SPOOL_KEY)
    redis_client.config_set("maxmemory", "1")  # Redis refuses every write (noeviction), still answers reads
    try:
        refused = authed.get(f"/fhir/DiagnosticReport/{report_id}")
    finally:
        redis_client.config_set("maxmemory", "0")
    assert refused.status_code == 503
    assert refused.json()["issue"][0]["code"] == "transient"
    assert report_id not in refused.text and redis_client.llen(SPOOL_KEY) == before
