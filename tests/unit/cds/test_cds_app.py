"""The CDS Hooks HTTP service against a real Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from hilum.cds.app import create_app
from hilum.cds.services import Hook, service_id
from hilum.common.cds_view import CdsFinding, CdsView, write_view
from hilum.common.reported_findings import ChangeSincePrior
from hilum.runtime.local_issuer import LocalIssuer
from hilum.runtime.ports import free_port
from tests.unit.cds.card_rules import assert_cds_card, empty_paths
from tests.unit.cds.conftest import EhrFhirServer
from tests.unit.cds.hook_bodies import MRN_SYSTEM, PUBLIC_URL, hook_request, prefetched, service_url

SERVICE_ID = service_id(Hook.PATIENT_VIEW)
SERVICE_URL = service_url(Hook.PATIENT_VIEW)
AUDIENCE = f"{PUBLIC_URL}{SERVICE_URL}"


def test_discovery_lists_a_service_per_hook_each_prefetching_the_patient(client: TestClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = response.json()["services"]
    assert {s["hook"] for s in services} == {h.value for h in Hook}
    assert len({s["id"] for s in services}) == len(services)
    for service in services:
        assert service["id"] == service_id(Hook(service["hook"]))
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
        "resourceType": "Patient", "id": "ehr-123", "identifier": [{"value": "12345"}]}})).json()
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


def test_an_unreachable_results_store_is_503_not_an_empty_answer(issuer: LocalIssuer) -> None:
    dead = redis.Redis(port=free_port(), socket_timeout=0.5, socket_connect_timeout=0.5)
    app = create_app(dead, patient_identifier_system=MRN_SYSTEM, trusted_issuers=[issuer.trusted_issuer],
                     public_url=PUBLIC_URL)
    with TestClient(app) as untouchable:
        response = untouchable.post(SERVICE_URL, json=hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042"))),
                                    headers={"Authorization": f"Bearer {issuer.token(AUDIENCE)}"})
    assert response.status_code == 503
    assert response.json() == {"error": "results store unavailable"} and response.headers["Retry-After"] == "5"


VIEWS = {
    "demo, new pneumothorax": {},
    "validated, new pneumothorax": {"demo_weights": False, "model_version": "1.0.0"},
    "validated, new nodule": {"demo_weights": False, "model_version": "1.0.0", "findings": [CdsFinding(
        code="nodule", display="Lung nodule", probability=0.8, change=ChangeSincePrior.NEW)]},
    "demo, nothing found": {"findings": [], "impression": ""},
    "flagged critical": {"critical": True, "demo_weights": False, "model_version": "1.0.0"},
}


@pytest.mark.parametrize("kind", list(VIEWS))
@pytest.mark.parametrize("hook", list(Hook))
def test_every_response_of_every_hook_follows_the_card_rules(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView], hook: Hook, kind: str
) -> None:
    """No null or empty value anywhere in a response, summaries under 140 characters, for every hook and kind of
    result (the test clock is the study's day, so order hooks show the result)."""
    write_view(redis_client, view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM, **VIEWS[kind]))
    response = client.post(service_url(hook), json=hook_request(hook, prefetch=prefetched((MRN_SYSTEM, "MRN-0042"))))
    assert response.status_code == 200
    payload = response.json()
    assert list(payload) == ["cards"]  # an empty card list is the one empty value CDS Hooks allows
    assert empty_paths(payload["cards"]) in ([], ["$"])
    assert payload["cards"] or hook == Hook.ENCOUNTER_DISCHARGE and kind in ("demo, nothing found",
                                                                             "validated, new nodule")
    for card in payload["cards"]:
        assert_cds_card(card)
