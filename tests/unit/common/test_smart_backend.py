"""Outbound SMART Backend Services: Hilum gets a token with a signed assertion from a real SMART token endpoint
(Hilum's own FHIR read API, which verifies it like any server), keeps it, and renews it when it expires."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.spool import AuditSpool
from hilum.audit.trail import AuditTrail
from hilum.cds.app import create_app
from hilum.common.errors import PermanentError
from hilum.common.settings import FhirApiClient, FhirDestination
from hilum.common.smart_backend import SmartBackendAuth, load_private_key, smart_auth
from hilum.fhir_api.app import FhirApi
from hilum.fhir_api.auth import SmartAuth

TOKEN_URL = "http://testserver/fhir/auth/token"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def server(sqlite_sessions: sessionmaker[Session], redis_client: redis.Redis) -> Iterator[TestClient]:
    """A SMART-protected FHIR API that registered Hilum's RSA and EC keys under two client ids."""
    clients = [FhirApiClient(client_id="hilum-rsa", public_key_pem=_public_pem(RSA_KEY), scopes=["system/*.rs"]),
               FhirApiClient(client_id="hilum-ec", public_key_pem=_public_pem(EC_KEY), scopes=["system/*.rs"])]
    api = FhirApi(sessions=sqlite_sessions, auth=SmartAuth(clients, redis_client, token_lifetime_s=60),
                  audit=AuditSpool(redis_client, AuditTrail("fhir-api")), default_page_size=10, max_page_size=10)
    with TestClient(create_app(redis_client, fhir_api=api)) as client:
        yield client


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("client_id", "key"), [("hilum-rsa", RSA_KEY), ("hilum-ec", EC_KEY)])
def test_a_token_is_fetched_kept_and_renewed(server: TestClient, client_id: str,
                                              key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    clock = Clock(time.time())
    auth = SmartBackendAuth(TOKEN_URL, client_id, key, "system/DiagnosticReport.rs", clock=clock)
    server.auth = auth
    assert server.get("/fhir/DiagnosticReport").status_code == 200
    first = auth.token
    assert first and server.get("/fhir/DiagnosticReport").status_code == 200
    assert auth.token == first  # kept while fresh
    clock.now += 45  # within RENEW_BEFORE_S of a 60 s token
    assert server.get("/fhir/DiagnosticReport").status_code == 200
    assert auth.token != first


def test_a_revoked_token_is_replaced_once_on_401(server: TestClient, redis_client: redis.Redis) -> None:
    auth = SmartBackendAuth(TOKEN_URL, "hilum-ec", EC_KEY, "system/*.rs")
    server.auth = auth
    assert server.get("/fhir/Observation").status_code == 200
    redis_client.flushdb()  # the server forgets every token it issued
    revoked = auth.token
    assert server.get("/fhir/Observation").status_code == 200 and auth.token != revoked


def test_a_key_the_server_does_not_know_is_a_permanent_refusal(server: TestClient) -> None:
    server.auth = SmartBackendAuth(TOKEN_URL, "hilum-ec", ec.generate_private_key(ec.SECP384R1()), "system/*.rs")
    with pytest.raises(PermanentError, match="refused Hilum: HTTP 400 invalid_client"):
        server.get("/fhir/DiagnosticReport")


def test_settings_build_the_auth_from_a_pem_file(tmp_path: Path) -> None:
    pem = tmp_path / "hilum.pem"
    pem.write_bytes(EC_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    assert isinstance(load_private_key(pem), ec.EllipticCurvePrivateKey)
    assert smart_auth(FhirDestination(url="http://ehr/fhir")) is None
    auth = smart_auth(FhirDestination(url="http://ehr/fhir", token_url=TOKEN_URL, client_id="hilum-ec",
                                      private_key_file=pem, key_id="k1"))
    assert auth is not None and auth.scope == "system/*.crus" and auth.key_id == "k1"
    with pytest.raises(ValueError, match="client_id and private_key_file"):
        smart_auth(FhirDestination(url="http://ehr/fhir", token_url=TOKEN_URL))
