"""The CDS app's operational endpoints (/healthz, /readyz, /metrics) and its request-latency metric, over a real
Redis and real SQLite databases: open to probes without a JWT, out of the OpenAPI schema, and free of PHI."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker

from hilum.cds.app import create_app
from hilum.cds.services import Hook
from hilum.common.connections import open_sessions
from hilum.common.settings import DatabaseSection, FhirApiSection, HilumSettings
from hilum.fhir_api.app import fhir_api_from_settings
from tests.unit.cds.hook_bodies import MRN_SYSTEM, hook_request, prefetched, service_url

PROBES = ("/healthz", "/readyz", "/metrics")


def _requests(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("hilum_http_request_duration_seconds_count", labels) or 0.0


@pytest.fixture
def stalled_redis() -> Iterator[redis.Redis]:
    """A client of a 'Redis' that accepts connections and never answers (a stalled server), without timeouts."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield redis.Redis(port=listener.getsockname()[1])


def test_liveness_needs_no_jwt_and_asks_no_dependency(stalled_redis: redis.Redis) -> None:
    with TestClient(create_app(stalled_redis)) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "alive"})


def test_ready_when_redis_and_the_database_answer(redis_client: redis.Redis,
                                                  sqlite_sessions: sessionmaker[Session]) -> None:
    with TestClient(create_app(redis_client, sessions=sqlite_sessions)) as client:
        response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_not_ready_names_the_database_that_failed_but_not_where_it_is(redis_client: redis.Redis,
                                                                      tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "hilum.db"
    sessions = open_sessions(HilumSettings(database=DatabaseSection(url=f"sqlite:///{missing}")))
    with TestClient(create_app(redis_client, sessions=sessions)) as client:
        response = client.get("/readyz")
    assert (response.status_code, response.json()) == (503, {"status": "unavailable", "failed": ["database"]})
    assert "no-such-folder" not in response.text


def test_not_ready_within_the_timeout_when_redis_stalls(stalled_redis: redis.Redis,
                                                        sqlite_sessions: sessionmaker[Session]) -> None:
    with TestClient(create_app(stalled_redis, sessions=sqlite_sessions, readiness_timeout_s=0.3)) as client:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert (response.status_code, response.json()) == (503, {"status": "unavailable", "failed": ["redis"]})
    assert elapsed < 2


def test_the_probes_are_left_out_of_the_openapi_schema(redis_client: redis.Redis) -> None:
    paths = create_app(redis_client).openapi()["paths"]
    assert not set(PROBES) & set(paths)


def test_metrics_are_prometheus_text_counting_cds_calls_by_route(redis_client: redis.Redis) -> None:
    url = service_url(Hook.PATIENT_VIEW)
    before = _requests(url, "POST", 401)
    with TestClient(create_app(redis_client)) as client:
        assert client.post(url, json=hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))).status_code == 401
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE hilum_http_request_duration_seconds histogram" in response.text
    assert _requests(url, "POST", 401) == before + 1
    assert "MRN-0042" not in response.text


def test_fhir_requests_are_labelled_by_route_template_never_by_path_or_query(
    redis_client: redis.Redis, sqlite_sessions: sessionmaker[Session],
) -> None:
    settings = HilumSettings(fhir_api=FhirApiSection(open_on_loopback=True))
    app = create_app(redis_client, fhir_api=fhir_api_from_settings(settings, redis_client, sqlite_sessions))
    read, unmatched = "/fhir/{resource_type}/{resource_id}", "unmatched"
    before = (_requests(read, "GET", 404), _requests(unmatched, "GET", 404), _requests(unmatched, "other", 404))
    with TestClient(app) as client:
        assert client.get("/fhir/Patient/pat-0042?identifier=MRN-0042").status_code == 404
        assert client.get("/no-such-door/MRN-0042").status_code == 404
        assert client.request("PROPFIND", "/no-such-door/MRN-0042").status_code == 404
        text = client.get("/metrics").text
    assert (_requests(read, "GET", 404), _requests(unmatched, "GET", 404),
            _requests(unmatched, "other", 404)) == tuple(count + 1 for count in before)
    assert "pat-0042" not in text and "MRN-0042" not in text


def test_an_unhandled_error_is_timed_as_a_500(redis_client: redis.Redis) -> None:
    app = create_app(redis_client)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    before = _requests("/boom", "GET", 500)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    assert _requests("/boom", "GET", 500) == before + 1

