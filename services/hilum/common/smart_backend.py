"""SMART Backend Services for Hilum's own calls to a hospital FHIR server (publishing results, searching
priors): client_credentials with a private_key_jwt assertion, the access token kept until shortly before it
expires.

An httpx.Auth, so every request of the caller's client carries the token; the token request goes
through the same client. A 401 fetches a new token once (the server may have revoked the old one).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hilum.common.errors import PermanentError, TransientError
from hilum.common.settings import FhirServerConnection

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S = 240  # SMART: the assertion's exp at most five minutes ahead
RENEW_BEFORE_S = 30  # a token this close to its expiry is renewed before use

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_private_key(path: Path) -> PrivateKey:
    """The PEM private key (RSA for RS384, EC P-384 for ES384) the client signs its assertions with."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the SMART client key must be an RSA or EC private key")
    return key


class SmartBackendAuth(httpx.Auth):
    """Bearer tokens from a SMART token endpoint, obtained with a signed client assertion."""

    requires_response_body = True

    def __init__(
        self, token_url: str, client_id: str, key: PrivateKey, scope: str, *, key_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url, self.client_id, self.scope, self.key_id = token_url, client_id, scope, key_id
        self._key = key
        self._algorithm = "RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384"
        self._clock = clock
        self._token = ""
        self._expires_at = 0.0

    @property
    def token(self) -> str:
        """The access token in use ("" before the first request)."""
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Fetch a token when there is none fresh, send the request with it, and once more after a 401."""
        if not self._token or self._clock() >= self._expires_at - RENEW_BEFORE_S:
            self._accept((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self._accept((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def assertion(self) -> str:
        """A client assertion for the token endpoint: iss = sub = client id, a fresh jti, exp in 4 minutes."""
        now = int(self._clock())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "iat": now,
                  "exp": now + ASSERTION_LIFETIME_S, "jti": uuid.uuid4().hex}
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(), "scope": self.scope}
        return httpx.Request("POST", self.token_url, data=form, headers={"Accept": "application/json"})

    def _accept(self, response: httpx.Response) -> None:
        """Keep the token the endpoint answered, or raise as its failure deserves (no secret in the reason)."""
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise TransientError(f"the FHIR server's token endpoint answered HTTP {status}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            error = body.get("error", "no access token") if isinstance(body, dict) else "no access token"
            raise PermanentError(f"the FHIR server's token endpoint refused Hilum: HTTP {status} {error}")
        self._token = body["access_token"]
        expires_in = body.get("expires_in")
        self._expires_at = self._clock() + (float(expires_in) if isinstance(expires_in, int | float) else 300.0)


def smart_auth(destination: FhirServerConnection) -> SmartBackendAuth | None:
    """The server's SMART Backend Services auth, or None when it has no token endpoint configured."""
    if not destination.token_url:
        return None
    if not destination.client_id or destination.private_key_file is None:
        raise ValueError("a SMART token_url needs client_id and private_key_file")
    return SmartBackendAuth(destination.token_url, destination.client_id,
                            load_private_key(destination.private_key_file), destination.scope,
                            key_id=destination.key_id)
