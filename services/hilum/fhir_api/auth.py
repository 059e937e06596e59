"""SMART Backend Services for the FHIR read API: the token endpoint (private_key_jwt client assertions) and the
bearer-token check every API call passes.

A registered client signs an assertion (RS384 or ES384) with iss == sub == its client_id, aud == the token URL,
exp at most five minutes ahead and a single-use jti (kept in Redis, as the CDS Hooks check does). It gets an
opaque access token, kept in Redis with its scopes until it expires, so every worker process accepts it.
Assertion problems answer 400 invalid_client (who signed, and the signature) or invalid_grant (aud, exp, jti);
a scope the client may not have answers invalid_scope. Tokens and claims are never logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import redis
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hilum.cds.auth import ALGORITHMS, JwksCache, Unauthorized, unverified_parts
from hilum.common.addresses import is_loopback
from hilum.common.jwt_replay import spend_jti
from hilum.common.settings import FhirApiClient

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_KEY_PREFIX = "hilum:fhir:token:"
JTI_KEY_PREFIX = "hilum:fhir:jti:"
MAX_ASSERTION_LIFETIME_S = 300
READ, SEARCH = "r", "s"
_SCOPE = re.compile(r"system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perms>read|write|\*|c?r?u?d?s?)")
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}


class OAuthError(Exception):
    """A refused token request: an RFC 6749 error code (the answer's `error`) and a description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class AccessDenied(Exception):
    """A refused API call: 401 (no token, or one that is not valid) or 403 (its scopes do not cover the call)."""

    def __init__(self, status: int, error: str, description: str, scope: str = "") -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.scope = status, error, description, scope

    @property
    def www_authenticate(self) -> str:
        """The WWW-Authenticate header value (RFC 6750)."""
        value = 'Bearer realm="hilum-fhir"'
        if self.error:
            value += f', error="{self.error}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value


class OpenModeRefused(ValueError):
    """Open mode (no tokens) was asked for on a server that listens beyond loopback."""


@dataclass(frozen=True)
class Scope:
    """A SMART system scope: a resource type (or "*") and the permissions it grants (letters of "cruds")."""

    resource_type: str
    permissions: frozenset[str]

    def covers(self, resource_type: str, permission: str) -> bool:
        """Whether this scope allows `permission` ("r" read, "s" search) on `resource_type`."""
        return self.resource_type in ("*", resource_type) and permission in self.permissions


def parse_scope(text: str) -> Scope | None:
    """A SMART v1 (`system/X.read`) or v2 (`system/X.rs`) system scope, or None when it is not one."""
    match = _SCOPE.fullmatch(text)
    if match is None or not match["perms"]:
        return None
    letters = _V1_PERMISSIONS.get(match["perms"], match["perms"])
    return Scope(match["type"], frozenset(letters))


def scope_allowed(requested: Scope, allowed: Sequence[Scope]) -> bool:
    """Whether every permission of `requested` is granted, for its type, by some allowed scope."""
    return all(any(scope.resource_type in ("*", requested.resource_type) and permission in scope.permissions
                   for scope in allowed) for permission in requested.permissions)


@dataclass(frozen=True)
class TokenGrant:
    """A token response: the opaque access token, its lifetime and the scopes granted."""

    access_token: str
    expires_in: int
    scope: str

    def to_json(self) -> dict[str, Any]:
        """The RFC 6749 token response body."""
        return {"access_token": self.access_token, "token_type": "bearer", "expires_in": self.expires_in,
                "scope": self.scope}


def check_open_mode(open_on_loopback: bool, host: str) -> None:
    """Refuse open mode (OpenModeRefused) unless the server listens on a loopback address only."""
    if open_on_loopback and not is_loopback(host):
        raise OpenModeRefused(f"fhir_api.open_on_loopback needs a loopback listen address, not {host!r}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SmartAuth:
    """Issues access tokens to registered clients and checks the token of each API call (or, in open mode,
    lets every call through)."""

    def __init__(self, clients: Sequence[FhirApiClient], redis_client: redis.Redis, *, token_lifetime_s: int,
                 open_mode: bool = False, jwks: JwksCache | None = None, clock: Callable[[], float] = time.time,
                 clock_skew_s: int = 60) -> None:
        self.clients = {client.client_id: client for client in clients}
        self.redis = redis_client
        self.token_lifetime_s = token_lifetime_s
        self.open_mode = open_mode
        self.jwks = jwks or JwksCache()
        self.clock = clock
        self.clock_skew_s = clock_skew_s

    # --- the token endpoint ---------------------------------------------------------------------------------

    def issue_token(self, form: Mapping[str, str], token_url: str) -> TokenGrant:
        """Answer a client_credentials request authenticated by a private_key_jwt assertion. Raises OAuthError."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError("invalid_request", f"a client_assertion of type {ASSERTION_TYPE} is required")
        client, claims = self._verify_assertion(form["client_assertion"], token_url)
        if form.get("client_id") and form["client_id"] != client.client_id:
            raise OAuthError("invalid_client", "client_id does not match the assertion's issuer")
        requested = form.get("scope", "").split()
        if not requested:
            raise OAuthError("invalid_scope", "scope is required")
        allowed = [scope for text in client.scopes if (scope := parse_scope(text)) is not None]
        for text in requested:
            scope = parse_scope(text)
            if scope is None or not scope_allowed(scope, allowed):
                raise OAuthError("invalid_scope", "a requested scope is not allowed for this client")
        self._spend_jti(client.client_id, claims)
        granted = " ".join(dict.fromkeys(requested))
        token = secrets.token_urlsafe(32)
        record = json.dumps({"client_id": client.client_id, "scope": granted})
        self.redis.set(f"{TOKEN_KEY_PREFIX}{_digest(token)}", record, ex=self.token_lifetime_s)
        log.info("FHIR API token issued", extra={"code": "token_issued"})
        return TokenGrant(token, self.token_lifetime_s, granted)

    def _key(self, client: FhirApiClient, header: dict[str, Any], alg: str) -> Any:
        """The client's public key for this assertion: its PEM, or the kid's key from its JWKS URL."""
        if client.public_key_pem:
            try:
                return load_pem_public_key(client.public_key_pem.encode())
            except ValueError:
                raise OAuthError("invalid_client", "the client's registered key cannot be read") from None
        kid = header.get("kid")
        if not client.jwks_url or not isinstance(kid, str) or not kid:
            raise OAuthError("invalid_client", "the assertion has no kid, or the client no key")
        if "jku" in header and header["jku"] != client.jwks_url:
            raise OAuthError("invalid_client", "the assertion's jku is not the client's registered JWKS URL")
        try:
            jwk = self.jwks.key(client.jwks_url, kid)
            return jwt.PyJWK(jwk, algorithm=alg).key
        except Unauthorized:
            raise OAuthError("invalid_client", "no key of the client matches the assertion") from None
        except jwt.PyJWTError:
            raise OAuthError("invalid_client", "the client's key does not suit the assertion's alg") from None

    def _verify_assertion(self, assertion: str, token_url: str) -> tuple[FhirApiClient, dict[str, Any]]:
        try:
            header, unverified = unverified_parts(assertion)
        except Unauthorized:
            raise OAuthError("invalid_client", "the client_assertion is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise OAuthError("invalid_client", "the assertion must be signed RS384 or ES384")
        client = self.clients.get(unverified.get("iss", "")) if isinstance(unverified.get("iss"), str) else None
        if client is None:
            raise OAuthError("invalid_client", "the assertion's issuer is not a registered client")
        key = self._key(client, header, str(alg))
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion, key, algorithms=[str(alg)], audience=token_url, issuer=client.client_id,
                leeway=self.clock_skew_s, options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except (jwt.InvalidSignatureError, jwt.InvalidIssuerError, jwt.DecodeError, jwt.InvalidKeyError):
            raise OAuthError("invalid_client", "the assertion's signature or issuer is not valid") from None
        except jwt.ExpiredSignatureError:
            raise OAuthError("invalid_grant", "the assertion has expired") from None
        except jwt.InvalidAudienceError:
            raise OAuthError("invalid_grant", "the assertion's aud is not this token endpoint") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise OAuthError("invalid_client", "the assertion is not valid") from None
        if claims.get("sub") != client.client_id:
            raise OAuthError("invalid_client", "the assertion's sub must be the client_id")
        exp = claims["exp"]
        if not isinstance(exp, int | float) or exp > self.clock() + MAX_ASSERTION_LIFETIME_S + self.clock_skew_s:
            raise OAuthError("invalid_grant", "the assertion's exp is more than five minutes ahead")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise OAuthError("invalid_grant", "the assertion needs a jti")
        return client, claims

    def _spend_jti(self, client_id: str, claims: dict[str, Any]) -> None:
        if not spend_jti(self.redis, JTI_KEY_PREFIX, client_id, claims["jti"], claims["exp"], self.clock(),
                         self.clock_skew_s):
            raise OAuthError("invalid_grant", "the assertion's jti was already used")

    # --- API calls ---------------------------------------------------------------------------------------------

    def grant(self, authorization: str | None) -> tuple[str, list[Scope] | None]:
        """The client the call's bearer token was issued to, and its scopes; ("", None) in open mode. Raises
        AccessDenied(401)."""
        if self.open_mode:
            return "", None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AccessDenied(401, "", "an access token is required (Authorization: Bearer)")
        record = self.redis.get(f"{TOKEN_KEY_PREFIX}{_digest(token.strip())}")
        if record is None:
            raise AccessDenied(401, "invalid_token", "the access token is not valid or has expired")
        granted = json.loads(record)
        scopes = [scope for text in str(granted["scope"]).split() if (scope := parse_scope(text)) is not None]
        return str(granted.get("client_id", "")), scopes

    def check(self, authorization: str | None, resource_type: str, permission: str) -> list[Scope] | None:
        """Allow a call needing `permission` ("r" read, "s" search) on `resource_type`, returning the token's
        scopes (None in open mode). Raises AccessDenied (401, or 403 when the scopes fall short)."""
        return self.check_client(authorization, resource_type, permission)[1]

    def check_client(self, authorization: str | None, resource_type: str,
                     permission: str) -> tuple[str, list[Scope] | None]:
        """check(), also naming the client the token was issued to ("" in open mode)."""
        client_id, scopes = self.grant(authorization)
        if scopes is not None and not any(scope.covers(resource_type, permission) for scope in scopes):
            raise AccessDenied(403, "insufficient_scope", f"the token's scopes do not allow this on {resource_type}",
                               scope=f"system/{resource_type}.{permission}")
        return client_id, scopes


def smart_configuration(token_url: str, resource_types: Sequence[str]) -> dict[str, Any]:
    """The .well-known/smart-configuration document of a Backend Services server."""
    scopes = ["system/*.rs", "system/*.read", *(f"system/{t}.rs" for t in resource_types),
              *(f"system/{t}.read" for t in resource_types)]
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(ALGORITHMS),
        "scopes_supported": scopes,
        "capabilities": ["client-confidential-asymmetric"],
    }
