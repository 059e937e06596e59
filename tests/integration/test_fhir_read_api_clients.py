"""The FHIR read API on a real uvicorn server, used by real FHIR clients from PyPI: fhirpy and fhirclient.

A Backend Services client gets a token with a private_key_jwt assertion; the clients then search by patient
identifier and _lastUpdated, page to the end, _include, read and vread, and meet 404, 410 and 401.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
import uvicorn
from fhirclient.models.diagnosticreport import DiagnosticReport  # type: ignore[import-untyped]
from fhirclient.server import (  # type: ignore[import-untyped]
    FHIRNotFoundException,
    FHIRServer,
    FHIRUnauthorizedException,
)
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ResourceNotFound
from requests import HTTPError

from hilum.audit.spool import AuditSpool
from hilum.audit.trail import AuditTrail
from hilum.cds.app import create_app
from hilum.common.db.session import create_db_engine, session_factory, upgrade_database
from hilum.fhir_api.app import FhirApi
from hilum.fhir_api.auth import SmartAuth
from hilum.fhir_api.store import delete_resource, store_bundle
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from tests.unit.fhir_api.backend_client import BackendClient
from tests.unit.fhir_api.synthetic_reports import MRN_SYSTEM, SyntheticReport, synthetic_report

pytestmark = pytest.mark.integration

PATIENTS = 4
REPORTS = 24
STORED_AT = datetime(2025, 1, 1, tzinfo=UTC)  # report n stored at STORED_AT + n minutes


@dataclass(frozen=True)
class RunningApi:
    """The served API: its base URL, a valid bearer token, the stored reports, and the deleted report's id."""

    base: str
    token: str
    reports: list[SyntheticReport]
    deleted_report: str


@pytest.fixture(scope="module")
def running_api(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[RunningApi]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fhir-api') / 'hilum.db'}"
    upgrade_database(url)
    sessions = session_factory(create_db_engine(url))
    reports = [synthetic_report(index, PATIENTS) for index in range(REPORTS)]
    with sessions.begin() as session:
        for report in reports:
            store_bundle(session, report.bundle, STORED_AT + timedelta(minutes=report.index))
        deleted = reports[-1].resource_ids("DiagnosticReport")[0]
        delete_resource(session, "DiagnosticReport", deleted, STORED_AT + timedelta(days=1))
    redis_client = redis.Redis.from_url(redis_server.url)
    backend = BackendClient("integration-engine")
    auth = SmartAuth([backend.registration()], redis_client, token_lifetime_s=300)
    app = create_app(redis_client, fhir_api=FhirApi(sessions=sessions, auth=auth, default_page_size=5,
                                                    audit=AuditSpool(redis_client, AuditTrail("fhir-api"))))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        token_url = f"{base}/auth/token"
        response = httpx.post(token_url, data=backend.form(token_url, scope="system/*.rs"), timeout=10)
        assert response.status_code == 200, response.text
        yield RunningApi(base, response.json()["access_token"], reports, deleted)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        redis_client.close()


def _report_ids(reports: list[SyntheticReport]) -> list[str]:
    return [report.resource_ids("DiagnosticReport")[0] for report in reports]


def test_fhirpy_searches_pages_includes_and_reads(running_api: RunningApi) -> None:
    client = SyncFHIRClient(running_api.base, authorization=f"Bearer {running_api.token}")
    patient_reports = [r for r in running_api.reports[:-1] if r.mrn == "MRN-00001"]
    found = client.resources("DiagnosticReport").search(patient__identifier=f"{MRN_SYSTEM}|MRN-00001").fetch_all()
    assert [report["id"] for report in found] == _report_ids(patient_reports)  # 6 reports over two pages of 5

    recent = (client.resources("DiagnosticReport").search(patient__identifier=f"{MRN_SYSTEM}|MRN-00002")
              .search(_lastUpdated__gt="2025-01-01T00:10:00Z").fetch_all())
    assert [report["id"] for report in recent] == _report_ids(
        [r for r in running_api.reports[11:-1] if r.mrn == "MRN-00002"])

    everything = client.resources("DiagnosticReport").sort("-_lastUpdated").fetch_all()
    assert [report["id"] for report in everything] == _report_ids(running_api.reports[:-1])[::-1]

    report = running_api.reports[3]
    with_results = (client.resources("DiagnosticReport").search(_id=report.resource_ids("DiagnosticReport")[0])
                    .include("DiagnosticReport", "result").include("DiagnosticReport", "imaging-study").fetch_raw())
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in with_results["entry"])
    assert modes == sorted([("match", "DiagnosticReport"), ("include", "ImagingStudy")]
                           + [("include", "Observation")] * len(report.resource_ids("Observation")))

    read = client.reference("DiagnosticReport", report.resource_ids("DiagnosticReport")[0]).to_resource()
    assert read["meta"]["versionId"] == "1" and read["status"] == "preliminary"
    observation = client.reference("Observation", report.resource_ids("Observation")[0]).to_resource()
    assert observation["device"]["reference"] == f"Device/{report.resource_ids('Device')[0]}"

    with pytest.raises(ResourceNotFound) as missing:  # fhirpy raises this for 404 and 410 alike
        client.reference("DiagnosticReport", "no-such-report").to_resource()
    assert json.loads(str(missing.value))["issue"][0]["code"] == "not-found"
    with pytest.raises(ResourceNotFound) as gone:
        client.reference("DiagnosticReport", running_api.deleted_report).to_resource()
    assert json.loads(str(gone.value))["issue"][0]["code"] == "deleted"

    unauthorized = SyncFHIRClient(running_api.base, authorization="Bearer forged")
    with pytest.raises(AuthorizationError) as refused:
        unauthorized.resources("DiagnosticReport").fetch()
    assert json.loads(str(refused.value))["issue"][0]["code"] == "login"


def test_fhirclient_reads_the_capability_statement_searches_and_vreads(running_api: RunningApi) -> None:
    server = FHIRServer(None, base_uri=running_api.base + "/")
    server.session.headers["Authorization"] = f"Bearer {running_api.token}"
    server.get_capability()  # parsed by fhirclient's strict R4 models
    assert server.capabilityStatement.fhirVersion == "4.0.1"

    search = DiagnosticReport.where(struct={"patient:identifier": f"{MRN_SYSTEM}|MRN-00003"})
    found = list(search.perform_resources_iter(server))
    assert [report.id for report in found] == _report_ids(
        [r for r in running_api.reports[:-1] if r.mrn == "MRN-00003"])
    assert all(report.status == "preliminary" and report.subject.identifier.value == "MRN-00003" for report in found)

    report_id = found[0].id
    read = DiagnosticReport.read(report_id, server)
    assert read.meta.versionId == "1"
    first = server.request_json(f"DiagnosticReport/{report_id}/_history/1")
    assert first["id"] == report_id and first["meta"]["versionId"] == "1"

    with pytest.raises(FHIRNotFoundException):
        DiagnosticReport.read("no-such-report", server)
    with pytest.raises(HTTPError) as gone:
        DiagnosticReport.read(running_api.deleted_report, server)
    answer = gone.value.response
    assert answer is not None and answer.status_code == 410
    assert answer.json()["resourceType"] == "OperationOutcome"

    anonymous = FHIRServer(None, base_uri=running_api.base + "/")
    with pytest.raises(FHIRUnauthorizedException) as refused:
        DiagnosticReport.read(report_id, anonymous)
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_endpoint_paths_an_engine_configures(running_api: RunningApi) -> None:
    assert httpx.get(f"{running_api.base}/metadata", timeout=5).status_code == 200  # no token needed
    smart = httpx.get(f"{running_api.base}/.well-known/smart-configuration", timeout=5).json()
    assert smart["token_endpoint"] == f"{running_api.base}/auth/token"
