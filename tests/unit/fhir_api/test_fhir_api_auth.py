"""SMART Backend Services: client assertions, scopes, opaque tokens kept in Redis, and the check of each call."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from hilum.fhir_api.auth import (
    AccessDenied,
    OAuthError,
    OpenModeRefused,
    SmartAuth,
    check_open_mode,
    parse_scope,
    scope_allowed,
    smart_configuration,
)
from tests.unit.fhir_api.backend_client import BackendClient

TOKEN_URL = "http://127.0.0.1:8080/fhir/auth/token"


@pytest.fixture(scope="module")
def client() -> BackendClient:
    return BackendClient()


@pytest.fixture
def auth(redis_client: redis.Redis, client: BackendClient) -> SmartAuth:
    return SmartAuth([client.registration()], redis_client, token_lifetime_s=300)


def _refused(auth: SmartAuth, form: dict[str, str]) -> str:
    with pytest.raises(OAuthError) as refused:
        auth.issue_token(form, TOKEN_URL)
    return refused.value.error


def test_a_registered_client_gets_an_opaque_token_that_any_worker_accepts(
        auth: SmartAuth, client: BackendClient, redis_client: redis.Redis) -> None:
    grant = auth.issue_token(client.form(TOKEN_URL, scope="system/DiagnosticReport.rs system/Observation.read"),
                             TOKEN_URL)
    body = grant.to_json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/DiagnosticReport.rs system/Observation.read"
    assert grant.access_token.count(".") == 0 and len(grant.access_token) >= 40  # opaque, not a JWT
    other_worker = SmartAuth([], redis_client, token_lifetime_s=300)
    header = f"Bearer {grant.access_token}"
    other_worker.check(header, "DiagnosticReport", "s")
    other_worker.check(header, "Observation", "r")
    with pytest.raises(AccessDenied) as denied:
        other_worker.check(header, "ImagingStudy", "r")
    assert denied.value.status == 403 and 'error="insufficient_scope"' in denied.value.www_authenticate
    ttl = [redis_client.ttl(key) for key in redis_client.scan_iter("hilum:fhir:token:*")]
    assert len(ttl) == 1 and 0 < ttl[0] <= 300


def test_an_rs384_client_registered_by_jwks_url(redis_client: redis.Redis) -> None:
    rsa_client = BackendClient("rhapsody", alg="RS384")
    assert isinstance(rsa_client.key, rsa.RSAPrivateKey)
    jwk = {**RSAAlgorithm.to_jwk(rsa_client.key.public_key(), as_dict=True), "kid": rsa_client.kid,
           "alg": "RS384", "use": "sig"}

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps({"keys": [jwk]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        jwks_url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        auth = SmartAuth([rsa_client.registration(jwks_url=jwks_url)], redis_client, token_lifetime_s=60)
        assert auth.issue_token(rsa_client.form(TOKEN_URL), TOKEN_URL).expires_in == 60
        with pytest.raises(OAuthError) as refused:
            form = rsa_client.form(TOKEN_URL)
            form["client_assertion"] = rsa_client.assertion(TOKEN_URL, headers={"jku": "http://evil.example/jwks"})
            auth.issue_token(form, TOKEN_URL)
        assert refused.value.error == "invalid_client"
    finally:
        server.shutdown()
        server.server_close()


def test_assertion_problems_are_refused_with_rfc_6749_errors(auth: SmartAuth, client: BackendClient) -> None:
    stranger = BackendClient("stranger")
    impostor = BackendClient("mirth-engine")  # right id, wrong key
    now = int(time.time())
    assert _refused(auth, {**client.form(TOKEN_URL), "grant_type": "password"}) == "unsupported_grant_type"
    assert _refused(auth, {**client.form(TOKEN_URL), "client_assertion_type": "basic"}) == "invalid_request"
    assert _refused(auth, stranger.form(TOKEN_URL)) == "invalid_client"
    assert _refused(auth, impostor.form(TOKEN_URL)) == "invalid_client"
    assert _refused(auth, client.form(TOKEN_URL, sub="someone-else")) == "invalid_client"
    assert _refused(auth, {**client.form(TOKEN_URL), "client_assertion": "not-a-jwt"}) == "invalid_client"
    hs256 = jwt.encode({"iss": client.client_id}, "shared-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    assert _refused(auth, {**client.form(TOKEN_URL), "client_assertion": hs256}) == "invalid_client"
    assert _refused(auth, client.form("https://elsewhere/token")) == "invalid_grant"
    assert _refused(auth, client.form(TOKEN_URL, exp=now - 600)) == "invalid_grant"
    assert _refused(auth, client.form(TOKEN_URL, exp=now + 3600)) == "invalid_grant"  # beyond five minutes
    assert _refused(auth, client.form(TOKEN_URL, jti=None)) == "invalid_client"
    assert _refused(auth, {**client.form(TOKEN_URL), "client_id": "other"}) == "invalid_client"


def test_a_jti_is_single_use(auth: SmartAuth, client: BackendClient) -> None:
    form = client.form(TOKEN_URL)
    auth.issue_token(form, TOKEN_URL)
    assert _refused(auth, form) == "invalid_grant"


def test_scopes_must_be_within_the_clients_allowance(redis_client: redis.Redis, client: BackendClient) -> None:
    narrow = SmartAuth([client.registration(("system/DiagnosticReport.read", "system/Observation.rs"))],
                       redis_client, token_lifetime_s=300)
    assert narrow.issue_token(client.form(TOKEN_URL, scope="system/DiagnosticReport.rs"), TOKEN_URL).scope == \
        "system/DiagnosticReport.rs"  # v1 read is v2 rs
    assert narrow.issue_token(client.form(TOKEN_URL, scope="system/Observation.s"), TOKEN_URL)
    for scope in ("system/*.rs", "system/Device.r", "system/Observation.cruds", "patient/*.read", "openid", ""):
        assert _refused(narrow, client.form(TOKEN_URL, scope=scope)) == "invalid_scope", scope


def test_scope_grammar() -> None:
    assert parse_scope("system/*.read") == parse_scope("system/*.rs")
    assert parse_scope("system/Observation.rs") is not None
    assert parse_scope("system/Observation.sr") is None  # v2 letters come in cruds order
    assert parse_scope("user/Observation.read") is None
    everything = parse_scope("system/*.*")
    requested = parse_scope("system/Device.r")
    assert everything is not None and requested is not None and scope_allowed(requested, [everything])


def test_calls_without_a_valid_token_are_refused_with_401(auth: SmartAuth) -> None:
    for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token"):
        with pytest.raises(AccessDenied) as denied:
            auth.check(header, "DiagnosticReport", "r")
        assert denied.value.status == 401
        assert denied.value.www_authenticate.startswith('Bearer realm="hilum-fhir"')


def test_open_mode_needs_loopback(redis_client: redis.Redis) -> None:
    open_auth = SmartAuth([], redis_client, token_lifetime_s=300, open_mode=True)
    assert open_auth.check(None, "DiagnosticReport", "s") is None
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_open_mode(True, host)
    check_open_mode(False, "0.0.0.0")
    for host in ("0.0.0.0", "10.1.2.3", "hilum.example.org", "::"):
        with pytest.raises(OpenModeRefused):
            check_open_mode(True, host)


def test_smart_configuration_document() -> None:
    document = smart_configuration(TOKEN_URL, ["DiagnosticReport"])
    assert document["token_endpoint"] == TOKEN_URL
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["ES384", "RS384"]
    assert document["capabilities"] == ["client-confidential-asymmetric"]
    assert "system/*.rs" in document["scopes_supported"]


@pytest.fixture(autouse=True)
def _no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    assert "Bearer " not in caplog.text and "eyJ" not in caplog.text
