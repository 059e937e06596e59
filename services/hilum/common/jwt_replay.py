"""Single-use JWT ids: a jti is recorded in Redis until its token can no longer be valid, and a second use refused.

Shared by the two doors that accept signed JWTs: the EHR's CDS Hooks calls and the FHIR read API's client
assertions. Keys hold a hash of issuer and jti, never the values themselves.
"""

from __future__ import annotations

import hashlib

import redis


def spend_jti(client: redis.Redis, key_prefix: str, issuer: str, jti: str, expires_at: float, now: float,
              clock_skew_s: int) -> bool:
    """Record (issuer, jti) until `expires_at` + clock_skew_s; False when it was already recorded (a replay)."""
    digest = hashlib.sha256(f"{issuer}|{jti}".encode()).hexdigest()
    ttl = max(1, int(expires_at - now) + clock_skew_s)
    return bool(client.set(f"{key_prefix}{digest}", 1, nx=True, ex=ttl))
