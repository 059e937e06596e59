"""FHIR read API fixtures: a migrated SQLite database per test (copied from one migrated once per session), stored
reports, and the API served by the CDS app with registered clients."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.spool import AuditSpool
from hilum.audit.trail import AuditTrail
from hilum.cds.app import create_app
from hilum.common.db.session import create_db_engine, session_factory, upgrade_database
from hilum.fhir_api.app import FhirApi
from hilum.fhir_api.auth import SmartAuth
from hilum.fhir_api.store import store_bundle
from tests.unit.fhir_api.backend_client import BackendClient
from tests.unit.fhir_api.synthetic_reports import SyntheticReport, synthetic_report


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the latest revision, to copy: migrating takes most of a second."""
    path = tmp_path_factory.mktemp("fhir-db") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def sessions(tmp_path: Path, migrated_database: Path) -> sessionmaker[Session]:
    """Sessions on a fresh, migrated SQLite database in tmp_path."""
    path = tmp_path / "hilum.db"
    shutil.copyfile(migrated_database, path)
    return session_factory(create_db_engine(f"sqlite:///{path}"))


BASE = "http://testserver/fhir"
TOKEN_URL = f"{BASE}/auth/token"
STORED_AT = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def backend() -> BackendClient:
    """The integration engine calling the API (its ES384 key registered; scope system/*.rs)."""
    return BackendClient()


@pytest.fixture
def reports(sessions: sessionmaker[Session]) -> list[SyntheticReport]:
    """Five stored reports of two patients."""
    made = [synthetic_report(index, 2) for index in range(5)]
    with sessions.begin() as session:
        for report in made:
            store_bundle(session, report.bundle, STORED_AT + timedelta(minutes=report.index))
    return made


@pytest.fixture
def api(sessions: sessionmaker[Session], redis_client: redis.Redis, backend: BackendClient) -> FhirApi:
    """The API with two registered clients: `backend`, and "reports-only" (system/DiagnosticReport.rs)."""
    narrow = BackendClient("reports-only")
    narrow.key = backend.key
    auth = SmartAuth([backend.registration(), narrow.registration(("system/DiagnosticReport.rs",))], redis_client,
                     token_lifetime_s=300)
    return FhirApi(sessions=sessions, auth=auth, audit=AuditSpool(redis_client, AuditTrail("fhir-api")),
                   default_page_size=2, max_page_size=10, clock=lambda: datetime(2025, 6, 1, tzinfo=UTC))


@pytest.fixture
def client(api: FhirApi, redis_client: redis.Redis) -> Iterator[TestClient]:
    """The CDS app serving the API under /fhir."""
    with TestClient(create_app(redis_client, fhir_api=api)) as test_client:
        yield test_client


def issue_token(client: TestClient, backend: BackendClient, scope: str = "system/*.rs", client_id: str = "") -> str:
    """An access token from the API's token endpoint for `backend` (or the client called client_id, same key)."""
    form = backend.form(TOKEN_URL, scope=scope, **({"iss": client_id, "sub": client_id} if client_id else {}))
    response = client.post("/fhir/auth/token", data=form)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def authed(client: TestClient, backend: BackendClient) -> TestClient:
    """`client` with a system/*.rs token of `backend`."""
    client.headers["Authorization"] = f"Bearer {issue_token(client, backend)}"
    return client
