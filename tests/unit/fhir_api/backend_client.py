"""A SMART Backend Services client for the tests: its key, its registration, and its signed client assertions."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hilum.common.settings import FhirApiClient
from hilum.fhir_api.auth import ASSERTION_TYPE


class BackendClient:
    """A client with an ES384 (or RS384) key, registered by PEM public key or by a JWKS URL."""

    def __init__(self, client_id: str = "mirth-engine", *, alg: str = "ES384") -> None:
        self.client_id, self.alg, self.kid = client_id, alg, f"{client_id}-key"
        self.key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            ec.generate_private_key(ec.SECP384R1()) if alg == "ES384"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def public_pem(self) -> str:
        """The public key as PEM, as HILUM_FHIR_API__CLIENTS registers it."""
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def registration(self, scopes: tuple[str, ...] = ("system/*.rs",), jwks_url: str = "") -> FhirApiClient:
        """This client as the server's settings list it."""
        if jwks_url:
            return FhirApiClient(client_id=self.client_id, jwks_url=jwks_url, scopes=list(scopes))
        return FhirApiClient(client_id=self.client_id, public_key_pem=self.public_pem(), scopes=list(scopes))

    def assertion(self, token_url: str, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A client assertion for token_url: iss = sub = client_id, exp in 4 minutes, a fresh jti; `claims`
        override (None removes one)."""
        now = int(time.time())
        body = {"iss": self.client_id, "sub": self.client_id, "aud": token_url, "exp": now + 240,
                "iat": now, "jti": uuid.uuid4().hex, **claims}
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.key, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})

    def form(self, token_url: str, scope: str = "system/*.rs", **claims: Any) -> dict[str, str]:
        """The token request form body."""
        return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(token_url, **claims), "scope": scope}
