"""The /fhir HTTP door, served by the CDS app: metadata, tokens, read, vread, search, and OperationOutcomes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from hilum.cds.app import create_app
from hilum.common.settings import CdsSection, FhirApiSection, HilumSettings
from hilum.fhir_api.app import fhir_api_from_settings
from hilum.fhir_api.auth import OpenModeRefused
from hilum.fhir_api.store import delete_resource
from tests.unit.fhir_api.backend_client import BackendClient
from tests.unit.fhir_api.conftest import BASE, STORED_AT, TOKEN_URL, issue_token
from tests.unit.fhir_api.synthetic_reports import MRN_SYSTEM, SyntheticReport


def _outcome(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code
    return body


def test_metadata_is_an_r4_capability_statement_with_the_token_url(client: TestClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    assert (statement["resourceType"], statement["fhirVersion"], statement["format"]) == (
        "CapabilityStatement", "4.0.1", ["json"])
    rest = statement["rest"][0]
    assert rest["security"]["extension"][0]["extension"] == [{"url": "token", "valueUri": TOKEN_URL}]
    by_type = {resource["type"]: resource for resource in rest["resource"]}
    assert {i["code"] for i in by_type["DiagnosticReport"]["interaction"]} == {"read", "vread", "search-type"}
    assert {i["code"] for i in by_type["Provenance"]["interaction"]} == {"read", "vread"}
    assert "DiagnosticReport:result" in by_type["DiagnosticReport"]["searchInclude"]
    assert {p["name"] for p in by_type["Observation"]["searchParam"]} >= {"patient", "date", "code", "_lastUpdated"}
    smart = client.get("/fhir/.well-known/smart-configuration").json()
    assert smart["token_endpoint"] == TOKEN_URL


def test_token_endpoint_answers_rfc_6749_errors(client: TestClient, backend: BackendClient) -> None:
    refused = client.post("/fhir/auth/token", data={**backend.form(TOKEN_URL), "grant_type": "password"})
    assert refused.status_code == 400 and refused.json()["error"] == "unsupported_grant_type"
    wrong_aud = client.post("/fhir/auth/token", data=backend.form("http://elsewhere/token"))
    assert wrong_aud.status_code == 400 and wrong_aud.json()["error"] == "invalid_grant"
    as_json = client.post("/fhir/auth/token", json=backend.form(TOKEN_URL))
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def test_read_vread_etag_and_not_modified(authed: TestClient, reports: list[SyntheticReport],
                                          sessions: sessionmaker[Session]) -> None:
    report_id = reports[0].resource_ids("DiagnosticReport")[0]
    response = authed.get(f"/fhir/DiagnosticReport/{report_id}")
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"] == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert response.json()["id"] == report_id
    assert authed.get(f"/fhir/DiagnosticReport/{report_id}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert authed.get(f"/fhir/DiagnosticReport/{report_id}?_format=json").status_code == 200
    with sessions.begin() as session:
        delete_resource(session, "DiagnosticReport", report_id, STORED_AT + timedelta(days=1))
    _outcome(authed.get(f"/fhir/DiagnosticReport/{report_id}"), 410, "deleted")
    first = authed.get(f"/fhir/DiagnosticReport/{report_id}/_history/1")
    assert first.status_code == 200 and first.json()["meta"]["versionId"] == "1"
    _outcome(authed.get(f"/fhir/DiagnosticReport/{report_id}/_history/2"), 410, "deleted")
    _outcome(authed.get(f"/fhir/DiagnosticReport/{report_id}/_history/3"), 404, "not-found")
    _outcome(authed.get(f"/fhir/DiagnosticReport/{report_id}/_history/latest"), 404, "not-found")
    _outcome(authed.get("/fhir/DiagnosticReport/no-such-report"), 404, "not-found")


def test_refusals_are_operation_outcomes(authed: TestClient, reports: list[SyntheticReport]) -> None:
    report_id = reports[0].resource_ids("DiagnosticReport")[0]
    _outcome(authed.get("/fhir/Medication/1"), 404, "not-supported")
    _outcome(authed.get("/fhir/Medication"), 404, "not-supported")
    _outcome(authed.get("/fhir/Patient"), 400, "not-supported")
    _outcome(authed.get("/fhir/DiagnosticReport?category=RAD"), 400, "invalid")
    _outcome(authed.put(f"/fhir/DiagnosticReport/{report_id}", json={}), 405, "not-supported")
    _outcome(authed.delete(f"/fhir/DiagnosticReport/{report_id}"), 405, "not-supported")
    _outcome(authed.post("/fhir/DiagnosticReport", json={}), 405, "not-supported")
    _outcome(authed.get(f"/fhir/DiagnosticReport/{report_id}", headers={"Accept": "application/fhir+xml"}), 406,
             "not-supported")
    _outcome(authed.get("/fhir/DiagnosticReport?_format=xml"), 406, "not-supported")
    _outcome(authed.get("/fhir/DiagnosticReport/a/b/c/d"), 404, "not-supported")


def test_calls_need_a_token_with_a_covering_scope(client: TestClient, backend: BackendClient,
                                                  reports: list[SyntheticReport]) -> None:
    report_id = reports[0].resource_ids("DiagnosticReport")[0]
    missing = client.get(f"/fhir/DiagnosticReport/{report_id}")
    _outcome(missing, 401, "login")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    invalid = client.get("/fhir/DiagnosticReport", headers={"Authorization": "Bearer forged"})
    _outcome(invalid, 401, "login")
    assert 'error="invalid_token"' in invalid.headers["www-authenticate"]
    narrow = {"Authorization": f"Bearer {issue_token(client, backend, 'system/DiagnosticReport.rs', 'reports-only')}"}
    assert client.get(f"/fhir/DiagnosticReport/{report_id}", headers=narrow).status_code == 200
    forbidden = client.get("/fhir/Observation", headers=narrow)
    _outcome(forbidden, 403, "forbidden")
    assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
    # _include never shows a type the token may not see.
    bundle = client.get(f"/fhir/DiagnosticReport?_id={report_id}&_include=DiagnosticReport:result",
                        headers=narrow).json()
    assert [entry["search"]["mode"] for entry in bundle["entry"]] == ["match"]


def test_search_bundle_links_and_paging(authed: TestClient, reports: list[SyntheticReport]) -> None:
    bundle = authed.get("/fhir/DiagnosticReport", params={"patient:identifier": f"{MRN_SYSTEM}|MRN-00000",
                                                          "_include": "DiagnosticReport:result"}).json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert [e["resource"]["id"] for e in matches] == [r.resource_ids("DiagnosticReport")[0] for r in reports[:4:2]]
    assert all(e["fullUrl"] == f"{BASE}/{e['resource']['resourceType']}/{e['resource']['id']}"
               for e in bundle["entry"])
    assert {e["resource"]["resourceType"] for e in bundle["entry"] if e["search"]["mode"] == "include"} == {
        "Observation"}
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert set(links) == {"self", "first", "next"} and links["next"].startswith(f"{BASE}/DiagnosticReport?")
    last = authed.get(links["next"]).json()
    assert [e["resource"]["id"] for e in last["entry"] if e["search"]["mode"] == "match"] == [
        reports[4].resource_ids("DiagnosticReport")[0]]
    last_links = {link["relation"]: link["url"] for link in last["link"]}
    assert "next" not in last_links and "previous" in last_links
    back = authed.get(last_links["previous"]).json()
    assert [e["resource"]["id"] for e in back["entry"] if e["search"]["mode"] == "match"] == [
        e["resource"]["id"] for e in matches]


def test_post_search_prefer_lenient_and_total(authed: TestClient, reports: list[SyntheticReport]) -> None:
    posted = authed.post("/fhir/Observation/_search", data={"patient.identifier": "MRN-00001", "_count": "10"})
    assert posted.status_code == 200, posted.text
    assert posted.json()["total"] == 2
    lenient = authed.get("/fhir/DiagnosticReport?category=RAD&_total=accurate",
                         headers={"Prefer": "handling=lenient"}).json()
    assert lenient["total"] == 5
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome[0]["resource"]["issue"][0]["severity"] == "warning"
    assert "category" not in json.dumps(lenient["link"])


def test_open_mode_needs_no_token_and_only_runs_on_loopback(sessions: sessionmaker[Session],
                                                            redis_client: redis.Redis,
                                                            reports: list[SyntheticReport]) -> None:
    settings = HilumSettings(fhir_api=FhirApiSection(open_on_loopback=True))
    api = fhir_api_from_settings(settings, redis_client, sessions)
    with TestClient(create_app(redis_client, fhir_api=api)) as open_client:
        assert open_client.get("/fhir/DiagnosticReport").status_code == 200
    with pytest.raises(OpenModeRefused):
        fhir_api_from_settings(settings.model_copy(update={"cds": CdsSection(host="0.0.0.0")}), redis_client,
                               sessions)
