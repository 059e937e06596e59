"""The CDS Hooks HTTP service against a real Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from hilum.cds.app import FEEDBACK_KEY, SERVICE_ID, create_app
from hilum.common.cds_view import CdsView, write_view
from hilum.runtime.local_issuer import LocalIssuer
from hilum.runtime.ports import free_port

SERVICE_URL = f"/cds-services/{SERVICE_ID}"
PUBLIC_URL = "http://testserver"  # TestClient's base URL: the address this EHR calls
AUDIENCE = f"{PUBLIC_URL}{SERVICE_URL}"
NOW = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)


MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"  # the system DICOM PatientIDs belong to, as configured


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


def hook_request(patient_id: str = "ehr-123", **extra: Any) -> dict[str, Any]:
    """A minimal valid patient-view request."""
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": patient_id},
        **extra,
    }


def patient(*identifiers: tuple[str, str], fhir_id: str = "ehr-123") -> dict[str, Any]:
    """A FHIR Patient with these (system, value) identifiers."""
    return {"resourceType": "Patient", "id": fhir_id,
            "identifier": [{"system": system, "value": value} for system, value in identifiers]}


def prefetched(*identifiers: tuple[str, str]) -> dict[str, Any]:
    """prefetch holding a FHIR Patient with these (system, value) identifiers."""
    return {"patient": patient(*identifiers)}


def test_discovery(client: TestClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    (service,) = response.json()["services"]
    assert service["id"] == SERVICE_ID
    assert service["hook"] == "patient-view"
    assert service["title"] and service["description"]
    assert service["prefetch"] == {"patient": "Patient/{{context.patientId}}"}


def test_no_result_gives_an_empty_card_list(client: TestClient) -> None:
    response = client.post(SERVICE_URL, json=hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042"))))
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_card_found_through_the_prefetched_patients_mrn(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM))
    body = hook_request(prefetch=prefetched(("urn:oid:2.16.840.1.113883.4.1", "SSN-x"), (MRN_SYSTEM, "MRN-0042")))
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 200
    assert "null" not in response.text
    (card,) = response.json()["cards"]
    assert card["summary"].startswith("DEMO") and "Pneumothorax" in card["summary"]
    assert uuid.UUID(card["uuid"])


def test_the_fhir_id_is_never_taken_for_an_mrn(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(patient_id="ehr-123", patient_system=MRN_SYSTEM))
    body = hook_request(patient_id="ehr-123", prefetch=prefetched(("urn:oid:9.9.9", "other")))
    assert client.post(SERVICE_URL, json=body).json() == {"cards": []}


def test_the_same_mrn_value_in_another_system_is_another_patient(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(patient_id="12345", patient_system=MRN_SYSTEM))
    write_view(redis_client, view_factory(patient_id="12345", patient_system="urn:oid:9.9.9", findings=[],
                                          study_date=date(2024, 4, 1), diagnostic_report_id="other-report"))
    ours = client.post(SERVICE_URL, json=hook_request(prefetch=prefetched((MRN_SYSTEM, "12345")))).json()
    theirs = client.post(SERVICE_URL, json=hook_request(prefetch=prefetched(("urn:oid:9.9.9", "12345")))).json()
    no_system = client.post(SERVICE_URL, json=hook_request(prefetch={"patient": {
        "resourceType": "Patient", "id": "x", "identifier": [{"value": "12345"}]}})).json()
    assert [c["summary"] for c in ours["cards"]] and "Pneumothorax" in ours["cards"][0]["summary"]
    assert theirs == {"cards": []} and no_system == {"cards": []}  # only the configured MRN system matches


def test_the_most_recent_study_across_mrns_wins(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(patient_id="OLD-1", patient_system=MRN_SYSTEM,
                                          study_date=date(2023, 1, 1), findings=[]))
    write_view(redis_client, view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM,
                                          study_date=date(2024, 3, 5)))
    body = hook_request(prefetch=prefetched((MRN_SYSTEM, "OLD-1"), (MRN_SYSTEM, "MRN-0042")))
    (card,) = client.post(SERVICE_URL, json=body).json()["cards"]
    assert "2024-03-05" in card["summary"]


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
    server = EhrFhirServer("secret-token", patient((MRN_SYSTEM, "MRN-0042"), fhir_id="ehr-123"))
    yield server
    server.close()


def test_without_prefetch_the_patient_is_fetched_from_the_fhir_server(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView], ehr: EhrFhirServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_view(redis_client, view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM))
    body = hook_request(fhirServer=ehr.url, fhirAuthorization={
        "access_token": "secret-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/Patient.read",
        "subject": "hilum"})
    (card,) = client.post(SERVICE_URL, json=body).json()["cards"]
    assert "Pneumothorax" in card["summary"]
    assert ehr.requests == [("/fhir/Patient/ehr-123", "Bearer secret-token")]
    assert "secret-token" not in caplog.text and not redis_client.keys("*token*")


@pytest.mark.parametrize("failure", ["no-fhir-server", "401", "500", "unreachable"])
def test_a_patient_that_cannot_be_had_is_412(client: TestClient, ehr: EhrFhirServer, failure: str) -> None:
    auth = {"access_token": "wrong" if failure == "401" else "secret-token", "token_type": "Bearer",
            "expires_in": 300, "scope": "patient/Patient.read", "subject": "hilum"}
    body = hook_request(fhirServer=ehr.url, fhirAuthorization=auth)
    if failure == "no-fhir-server":
        body = hook_request()
    elif failure == "500":
        ehr.fail_with = 500
    elif failure == "unreachable":
        body["fhirServer"] = f"http://127.0.0.1:{free_port()}/fhir"
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 412
    assert "secret-token" not in response.text


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "context": {}}, "context.patientId"),
        ({"hook": "order-sign", "hookInstance": str(uuid.uuid4()), "context": {"patientId": "p"}}, "hook"),
        (
            {"hook": "patient-view", "hookInstance": "not-a-uuid", "context": {"patientId": "p"}},
            "hookInstance",
        ),
        (
            {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"patientId": "p"},
                "prefetch": {"patient": {"resourceType": "Observation"}},
            },
            "prefetch.patient",
        ),
    ],
)
def test_bad_request_is_400_with_a_clear_message(
    client: TestClient, body: dict[str, Any], where: str
) -> None:
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] == "invalid CDS Hooks request"
    assert any(where in detail for detail in payload["details"])


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(SERVICE_URL, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_bad_request_does_not_echo_the_access_token(client: TestClient) -> None:
    body = hook_request(fhirAuthorization={"access_token": "secret-token-value"})
    body["context"].pop("patientId")
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 400
    assert "secret-token-value" not in response.text


def test_feedback_is_stored(client: TestClient, redis_client: redis.Redis) -> None:
    card = str(uuid.uuid4())
    body = {
        "feedback": [
            {"card": card, "outcome": "accepted", "outcomeTimestamp": "2024-03-05T09:45:00Z"},
            {
                "card": card,
                "outcome": "overridden",
                "outcomeTimestamp": "2024-03-05T09:46:00Z",
                "overrideReason": {
                    "reason": {"system": "https://hilum.dev/override", "code": "disagree"},
                    "userComment": "No pneumothorax on review",
                },
            },
        ]
    }
    response = client.post(f"{SERVICE_URL}/feedback", json=body)
    assert response.status_code == 200
    assert response.json() == {"stored": 2}
    stored = [json.loads(item) for item in redis_client.lrange(FEEDBACK_KEY, 0, -1)]
    assert [s["feedback"]["outcome"] for s in stored] == ["accepted", "overridden"]
    assert all(s["feedback"]["card"] == card and s["service"] == SERVICE_ID for s in stored)
    assert stored[0]["received_at"].startswith("2024-03-05T10:00:00")
    assert stored[1]["feedback"]["overrideReason"]["reason"]["code"] == "disagree"


@pytest.mark.parametrize(
    "body",
    [
        {"feedback": []},
        {
            "feedback": [
                {"card": "not-a-uuid", "outcome": "accepted", "outcomeTimestamp": "2024-03-05T09:45:00Z"}
            ]
        },
        {
            "feedback": [
                {"card": str(uuid.uuid4()), "outcome": "ignored", "outcomeTimestamp": "2024-03-05T09:45:00Z"}
            ]
        },
        {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted"}]},
    ],
)
def test_bad_feedback_is_400_and_nothing_is_stored(
    client: TestClient, redis_client: redis.Redis, body: dict[str, Any]
) -> None:
    assert client.post(f"{SERVICE_URL}/feedback", json=body).status_code == 400
    assert redis_client.llen(FEEDBACK_KEY) == 0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(issuer: LocalIssuer, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer.iss, "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, **overrides}


def alg_none(issuer: LocalIssuer) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": issuer.kid(), "jku": issuer.jku}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims(issuer)).encode())}."


def hs256_with_the_public_key(issuer: LocalIssuer) -> str:
    """The algorithm-confusion attack: HMAC keyed with the issuer's published public key."""
    public = issuer.private_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid(), "jku": issuer.jku}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims(issuer)).encode())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def rs256(issuer: LocalIssuer) -> str:
    return jwt.encode(claims(issuer), issuer.private_key("RS384"), algorithm="RS256",
                      headers={"kid": issuer.kid("RS384"), "jku": issuer.jku})


def another_issuers_key(issuer: LocalIssuer) -> str:
    """Claims and header of the trusted issuer, signature from a key it never published."""
    return LocalIssuer(iss=issuer.iss).token(AUDIENCE, headers={"kid": issuer.kid(), "jku": issuer.jku})


def now() -> int:
    return int(time.time())


REFUSED: dict[str, Callable[[LocalIssuer], str]] = {
    "malformed": lambda issuer: "not.a.jwt",
    "alg none": alg_none,
    "HS256 keyed with the public key": hs256_with_the_public_key,
    "RS256": rs256,
    "wrong aud": lambda issuer: issuer.token(f"{PUBLIC_URL}/cds-services/another-service"),
    "aud of another host": lambda issuer: issuer.token(f"https://elsewhere.example{SERVICE_URL}"),
    "expired": lambda issuer: issuer.token(AUDIENCE, iat=now() - 7200, exp=now() - 3600),
    "iat in the future": lambda issuer: issuer.token(AUDIENCE, iat=now() + 3600, exp=now() + 3900),
    "no exp": lambda issuer: issuer.token(AUDIENCE, exp=None),
    "no iat": lambda issuer: issuer.token(AUDIENCE, iat=None),
    "no jti": lambda issuer: issuer.token(AUDIENCE, jti=None),
    "no kid": lambda issuer: issuer.token(AUDIENCE, headers={"kid": None}),
    "unknown iss": lambda issuer: issuer.token(AUDIENCE, iss="https://ehr.untrusted.example"),
    "jku not the listed one": lambda issuer: issuer.token(
        AUDIENCE, headers={"jku": f"http://127.0.0.1:{free_port()}/jwks.json"}),
    "another issuer's key": another_issuers_key,
}


# The reason each is refused, as logged (the response says only "unauthorized").
REASONS = {"malformed": "malformed", "alg none": "bad_alg", "HS256 keyed with the public key": "bad_alg",
           "RS256": "bad_alg", "wrong aud": "bad_aud", "aud of another host": "bad_aud", "expired": "expired",
           "iat in the future": "not_yet_valid", "no exp": "missing_claim", "no iat": "missing_claim",
           "no jti": "missing_claim", "no kid": "no_kid", "unknown iss": "untrusted_iss",
           "jku not the listed one": "bad_jku", "another issuer's key": "bad_signature"}


@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("path", [SERVICE_URL, f"{SERVICE_URL}/feedback"])
def test_a_refused_jwt_is_401_without_detail(client: TestClient, issuer: LocalIssuer, case: str, path: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    token = REFUSED[case](issuer)
    with caplog.at_level(logging.INFO):
        response = client.post(path, json=hook_request(), headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert token not in caplog.text and f"CDS Hooks call refused ({REASONS[case]})" in caplog.text


@pytest.mark.parametrize("path", [SERVICE_URL, f"{SERVICE_URL}/feedback"])
def test_a_call_without_a_token_is_401(client: TestClient, path: str) -> None:
    response = client.post(path, json=hook_request(), auth=None)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert client.post(path, json=hook_request(), headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401


def test_discovery_needs_no_token(client: TestClient) -> None:
    assert client.get("/cds-services", auth=None).status_code == 200


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_valid_jwt_is_accepted(client: TestClient, issuer: LocalIssuer, alg: str) -> None:
    body = hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    response = client.post(SERVICE_URL, json=body, headers=bearer(issuer.token(AUDIENCE, alg=alg)))
    assert response.status_code == 200


def test_an_aud_list_holding_the_service_url_is_accepted(client: TestClient, issuer: LocalIssuer) -> None:
    token = issuer.token(AUDIENCE, aud=[AUDIENCE, "https://other.example/cds-services/x"])
    body = hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    assert client.post(SERVICE_URL, json=body, headers=bearer(token)).status_code == 200


def test_a_replayed_jti_is_refused(client: TestClient, issuer: LocalIssuer, redis_client: redis.Redis) -> None:
    token = issuer.token(AUDIENCE)
    body = hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    assert client.post(SERVICE_URL, json=body, headers=bearer(token)).status_code == 200
    replay = client.post(SERVICE_URL, json=body, headers=bearer(token))
    assert replay.status_code == 401 and replay.json() == {"error": "unauthorized"}
    (key,) = redis_client.keys("hilum:cds:jti:*")
    assert 0 < redis_client.ttl(key) <= 300 + 60


def test_an_unknown_kid_is_refused_without_hammering_the_jwks(client: TestClient, issuer: LocalIssuer) -> None:
    """A kid the cached JWKS lacks is refused; the JWKS is fetched again only after an interval (see
    test_cds_auth), so forged kids cannot make Hilum fetch it on every call."""
    body = hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    assert client.post(SERVICE_URL, json=body).status_code == 200  # the JWKS is cached from here on
    before = issuer.jwks_requests
    assert client.post(SERVICE_URL, json=body).status_code == 200
    assert issuer.jwks_requests == before
    response = client.post(SERVICE_URL, json=body, headers=bearer(issuer.token(AUDIENCE, headers={"kid": "gone"})))
    assert response.status_code == 401 and response.json() == {"error": "unauthorized"}
    assert issuer.jwks_requests == before


def test_keys_come_only_from_the_listed_jku(redis_client: redis.Redis, issuer: LocalIssuer) -> None:
    with LocalIssuer(iss=issuer.iss) as impostor:
        app = create_app(redis_client, trusted_issuers=[issuer.trusted_issuer], public_url=PUBLIC_URL)
        with TestClient(app) as test_client:
            response = test_client.post(SERVICE_URL, json=hook_request(), headers=bearer(impostor.token(AUDIENCE)))
        assert response.status_code == 401
        assert impostor.jwks_requests == 0


def test_without_trusted_issuers_every_call_is_refused(redis_client: redis.Redis, issuer: LocalIssuer) -> None:
    with TestClient(create_app(redis_client, public_url=PUBLIC_URL)) as untrusting:
        assert untrusting.get("/cds-services").status_code == 200
        for path in (SERVICE_URL, f"{SERVICE_URL}/feedback"):
            response = untrusting.post(path, json=hook_request(), headers=bearer(issuer.token(AUDIENCE)))
            assert response.status_code == 401
