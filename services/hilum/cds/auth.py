"""JWT verification of CDS Hooks service calls and feedback (CDS Hooks 2.0, "Trusting CDS Clients").

Every call carries `Authorization: Bearer <JWT>` signed by the EHR (RS384 or ES384). The issuer must be
configured as trusted, and its keys are read only from the JWKS URL configured for it, never from a URL a
token names. A refused call gets 401 and nothing more; the reason goes to the log as a short code, never
the token or its claims.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import httpx
import jwt
import redis
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from hilum.common.jwt_replay import spend_jti
from hilum.common.settings import TrustedIssuer

log = logging.getLogger(__name__)

ALGORITHMS = frozenset({"RS384", "ES384"})
JTI_KEY_PREFIX = "hilum:cds:jti:"
SERVICES_SEGMENT = "cds-services"


class Unauthorized(Exception):
    """A call that is refused; `code` is a short reason for the log (e.g. "bad_aud"), never a claim value."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class KeysNotCached(Exception):
    """Verifying needs a JWKS fetch (network I/O), which the caller asked not to do on this thread."""


class JwksCache:
    """Public keys by kid, per JWKS URL. A URL is fetched again for an unknown kid (the issuer rotated its
    keys), but at most once per min_refetch_s: anyone can send a token with an unknown kid, and forged
    tokens must not make Hilum hammer an issuer's JWKS endpoint.
    """

    def __init__(self, timeout_s: float = 5.0, min_refetch_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.min_refetch_s = min_refetch_s
        self._clock = clock
        self._keys: dict[str, dict[str, dict[str, Any]]] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def _fetch(self, jku: str) -> dict[str, dict[str, Any]]:
        try:
            response = httpx.get(jku, timeout=self.timeout_s, follow_redirects=False)
            response.raise_for_status()
            keys = response.json()["keys"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            raise Unauthorized("jwks_unavailable") from None
        if not isinstance(keys, list):
            raise Unauthorized("jwks_unavailable")
        by_kid = {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}
        with self._lock:
            self._keys[jku] = by_kid
            self._fetched_at[jku] = self._clock()
        return by_kid

    def key(self, jku: str, kid: str, *, may_fetch: bool = True) -> dict[str, Any]:
        """The JWK with this kid from the JWKS at `jku` (a trusted issuer's configured URL). Raises Unauthorized,
        or KeysNotCached when the JWKS must be fetched and `may_fetch` is False."""
        with self._lock:
            keys = self._keys.get(jku)
            fetched_at = self._fetched_at.get(jku, float("-inf"))
        stale = self._clock() - fetched_at >= self.min_refetch_s
        must_fetch = keys is None or (kid not in keys and stale)  # first use, or a key rotated in since
        if must_fetch and not may_fetch:
            raise KeysNotCached(jku)
        if must_fetch:
            keys = self._fetch(jku)
        assert keys is not None
        if kid not in keys:
            raise Unauthorized("unknown_kid")
        return keys[kid]


def _segment(text: str) -> dict[str, Any]:
    """A base64url JSON object segment of a JWT; Unauthorized("malformed") otherwise."""
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise Unauthorized("malformed") from None
    if not isinstance(value, dict):
        raise Unauthorized("malformed")
    return value


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, read without checking anything: only to pick the issuer and key.
    The signature check (jwt.decode) parses the token again, strictly."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("malformed")
    return _segment(parts[0]), _segment(parts[1])


class JwtVerifier:
    """Checks a CDS Hooks bearer JWT: algorithm, trusted issuer and its JWKS, signature, aud, exp, iat, and a
    single-use jti (recorded in Redis until the token expires).
    """

    def __init__(self, trusted_issuers: Sequence[TrustedIssuer], public_url: str, redis_client: redis.Redis, *,
                 clock_skew_s: int = 60, jwks: JwksCache | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuers = {issuer.iss: issuer for issuer in trusted_issuers}
        self.public_url = public_url.rstrip("/")
        self.redis = redis_client
        self.clock_skew_s = clock_skew_s
        self.jwks = jwks or JwksCache()
        self.clock = clock
        # (jku, kid, alg) -> (the JWK as the JWKS cache holds it, its key object): built once per fetched key.
        self._key_objects: dict[tuple[str, str, str], tuple[dict[str, Any], jwt.PyJWK]] = {}

    def audience(self, service_id: str) -> str:
        """The aud a call to this service must carry: the service's URL as the EHR calls it."""
        return f"{self.public_url}/{SERVICES_SEGMENT}/{service_id}"

    def audiences(self, service_id: str, feedback: bool) -> list[str]:
        """The accepted auds: the service URL; for feedback also the feedback URL, which some EHRs sign for."""
        service_url = self.audience(service_id)
        return [service_url, f"{service_url}/feedback"] if feedback else [service_url]

    def verify(self, authorization: str | None, service_id: str, *, feedback: bool = False,
               may_fetch: bool = True) -> str:
        """Accept the call, returning its issuer (the EHR's `iss`), or raise Unauthorized with the reason's code
        (KeysNotCached when the issuer's JWKS must be fetched and `may_fetch` is False: the caller retries where
        blocking I/O is fine)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("no_token")
        token = token.strip()
        header, unverified = unverified_parts(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise Unauthorized("bad_alg")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("no_kid")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthorized("untrusted_iss")
        if "jku" in header and header["jku"] != issuer.jku:
            raise Unauthorized("bad_jku")
        key = self._key_object(issuer.jku, kid, alg, may_fetch)
        claims = self._decode(token, key, alg, issuer.iss, self.audiences(service_id, feedback))
        self._spend_jti(issuer.iss, claims)
        return issuer.iss

    def _key_object(self, jku: str, kid: str, alg: str, may_fetch: bool) -> jwt.PyJWK:
        """The key object for this kid and alg, built once for each JWK the issuer's JWKS holds."""
        jwk = self.jwks.key(jku, kid, may_fetch=may_fetch)
        cached = self._key_objects.get((jku, kid, alg))
        if cached is not None and cached[0] is jwk:
            return cached[1]
        if jwk.get("alg", alg) != alg or jwk.get("use", "sig") != "sig":
            raise Unauthorized("key_mismatch")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            raise Unauthorized("key_mismatch") from None
        self._key_objects[(jku, kid, alg)] = (jwk, key)
        return key

    def _decode(self, token: str, key: jwt.PyJWK, alg: str, iss: str, audiences: list[str]) -> dict[str, Any]:
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=audiences, issuer=iss,
                                leeway=self.clock_skew_s,
                                options={"require": ["iss", "aud", "exp", "iat", "jti"], "strict_aud": False})
        except jwt.MissingRequiredClaimError:
            raise Unauthorized("missing_claim") from None
        except jwt.ExpiredSignatureError:
            raise Unauthorized("expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("bad_aud") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("not_yet_valid") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("bad_signature") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid_token") from None
        now = self.clock()
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int | float) or iat > now + self.clock_skew_s:
            raise Unauthorized("iat_in_future")
        if not isinstance(exp, int | float) or exp <= now - self.clock_skew_s:
            raise Unauthorized("expired")
        return claims

    def _spend_jti(self, iss: str, claims: dict[str, Any]) -> None:
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("missing_claim")
        if not spend_jti(self.redis, JTI_KEY_PREFIX, iss, jti, claims["exp"], self.clock(), self.clock_skew_s):
            raise Unauthorized("replayed_jti")


def service_id_of(path: str) -> str:
    """The CDS service id in a request path: /cds-services/{id} or /cds-services/{id}/feedback ('' if none)."""
    parts = [part for part in path.split("/") if part]
    if SERVICES_SEGMENT in parts:
        index = parts.index(SERVICES_SEGMENT)
        if index + 1 < len(parts):
            return parts[index + 1]
    return ""


async def authorize(request: Request) -> None:
    """FastAPI dependency: the call's JWT must pass the app's JwtVerifier (app.state.jwt_verifier).

    Verified on the event loop (a few hundred microseconds of CPU and one Redis write); only when the issuer's
    JWKS must be fetched does the check move to a worker thread, so a slow JWKS endpoint never stalls the loop.
    """
    verifier = cast(JwtVerifier, request.app.state.jwt_verifier)
    check = functools.partial(verifier.verify, request.headers.get("Authorization"), service_id_of(request.url.path),
                              feedback=request.url.path.rstrip("/").endswith("/feedback"))
    try:
        try:
            issuer = check(may_fetch=False)
        except KeysNotCached:
            issuer = await run_in_threadpool(check)
        request.state.cds_issuer = issuer  # the requestor the call's audit record names
    except Unauthorized as refused:
        log.warning("CDS Hooks call refused (%s)", refused.code, extra={"code": refused.code})
        raise


async def unauthorized_response(request: Request, error: Exception) -> JSONResponse:
    """401 with no detail: what was wrong is only in the log."""
    if not isinstance(error, Unauthorized):
        raise error
    return JSONResponse(status_code=401, content={"error": "unauthorized"}, headers={"WWW-Authenticate": "Bearer"})
