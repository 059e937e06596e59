"""CDS service test fixtures: an app over a real Redis whose client signs calls as an EHR, and the EHR's FHIR
server stand-in."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Generator, Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from hilum.cds.app import create_app
from hilum.runtime.local_issuer import LocalIssuer
from tests.unit.cds.hook_bodies import EHR_PATIENT_ID, MRN_SYSTEM, NOW, PUBLIC_URL, patient


class SignedByEhr(httpx.Auth):
    """Signs each CDS service or feedback call as the EHR does (aud: the service's URL); discovery goes
    unsigned, and a request that already has an Authorization header is left as it is.
    """

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path.removesuffix("/feedback")
        if "Authorization" not in request.headers and path != "/cds-services":
            request.headers["Authorization"] = f"Bearer {self.issuer.token(f'{PUBLIC_URL}{path}')}"
        yield request


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer(rs384=True) as local:
        yield local


@pytest.fixture
def client(redis_client: redis.Redis, issuer: LocalIssuer) -> Iterator[TestClient]:
    app = create_app(redis_client, clock=lambda: NOW, patient_identifier_system=MRN_SYSTEM,
                     trusted_issuers=[issuer.trusted_issuer], public_url=PUBLIC_URL)
    with TestClient(app) as test_client:
        test_client.auth = SignedByEhr(issuer)
        yield test_client


class EhrFhirServer:
    """A stand-in for the EHR's FHIR server on loopback (the real one cannot run here): it checks the
    bearer token and the path it is asked for, answers the Patient, or fails the way a server does.
    """

    def __init__(self, token: str, patient_json: dict[str, Any]) -> None:
        self.token, self.patient_json, self.fail_with = token, patient_json, 0
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.requests.append((self.path, self.headers.get("Authorization", "")))
                expected = f"/fhir/Patient/{outer.patient_json['id']}"
                if outer.fail_with:
                    status, body = outer.fail_with, b'{"resourceType": "OperationOutcome"}'
                elif self.headers.get("Authorization") != f"Bearer {outer.token}":
                    status, body = 401, b'{"resourceType": "OperationOutcome"}'
                elif self.path != expected:
                    status, body = 404, b'{"resourceType": "OperationOutcome"}'
                else:
                    status, body = 200, json.dumps(outer.patient_json).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Quiet: tokens must not reach any log."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ehr() -> Iterator[EhrFhirServer]:
    server = EhrFhirServer("secret-token", patient((MRN_SYSTEM, "MRN-0042"), fhir_id=EHR_PATIENT_ID))
    yield server
    server.close()
