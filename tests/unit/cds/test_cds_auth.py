"""JwtVerifier on its own: the reasons a CDS Hooks JWT is refused, JWKS caching and the single-use jti."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec

from hilum.cds.auth import JwksCache, JwtVerifier, KeysNotCached, Unauthorized, service_id_of
from hilum.runtime.local_issuer import LocalIssuer

PUBLIC_URL = "https://cds.hospital.example/"
SERVICE = "hilum-cxr-patient-view"
AUDIENCE = f"https://cds.hospital.example/cds-services/{SERVICE}"


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer(rs384=True) as local:
        yield local


@pytest.fixture
def verifier(issuer: LocalIssuer, redis_client: redis.Redis) -> JwtVerifier:
    return JwtVerifier([issuer.trusted_issuer], PUBLIC_URL, redis_client, clock_skew_s=60)


def refusal(verifier: JwtVerifier, token: str, service: str = SERVICE) -> str:
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(f"Bearer {token}", service)
    return refused.value.code


@pytest.mark.parametrize(
    ("path", "service"),
    [(f"/cds-services/{SERVICE}", SERVICE), (f"/cds-services/{SERVICE}/feedback", SERVICE),
     ("/cds-services", ""), ("/fhir/Patient", "")],
)
def test_the_service_id_comes_from_the_path(path: str, service: str) -> None:
    assert service_id_of(path) == service


def test_the_audience_is_the_public_service_url(verifier: JwtVerifier) -> None:
    assert verifier.audience(SERVICE) == AUDIENCE


def test_a_valid_token_passes_once(verifier: JwtVerifier, issuer: LocalIssuer) -> None:
    token = issuer.token(AUDIENCE)
    verifier.verify(f"Bearer {token}", SERVICE)
    assert refusal(verifier, token) == "replayed_jti"


def test_the_same_jti_from_two_issuers_is_two_tokens(issuer: LocalIssuer, redis_client: redis.Redis) -> None:
    with LocalIssuer(iss="https://second-ehr.example") as second:
        verifier = JwtVerifier([issuer.trusted_issuer, second.trusted_issuer], PUBLIC_URL, redis_client)
        verifier.verify(f"Bearer {issuer.token(AUDIENCE, jti='same')}", SERVICE)
        verifier.verify(f"Bearer {second.token(AUDIENCE, jti='same')}", SERVICE)


def test_a_token_for_another_service_is_refused(verifier: JwtVerifier, issuer: LocalIssuer) -> None:
    assert refusal(verifier, issuer.token(AUDIENCE), service="another-service") == "bad_aud"


def test_a_header_alg_that_does_not_match_the_key_is_refused(verifier: JwtVerifier, issuer: LocalIssuer) -> None:
    token = issuer.token(AUDIENCE, alg="RS384", headers={"kid": issuer.kid("ES384")})
    assert refusal(verifier, token) == "key_mismatch"


def test_iat_beyond_the_clock_skew_is_refused(issuer: LocalIssuer, redis_client: redis.Redis) -> None:
    verifier = JwtVerifier([issuer.trusted_issuer], PUBLIC_URL, redis_client, clock_skew_s=60,
                           clock=lambda: time.time() - 120)  # our clock is two minutes behind the EHR's
    assert refusal(verifier, issuer.token(AUDIENCE)) == "iat_in_future"


def test_a_rotated_key_is_found_after_one_refresh(issuer: LocalIssuer, redis_client: redis.Redis) -> None:
    now = [1000.0]
    verifier = JwtVerifier([issuer.trusted_issuer], PUBLIC_URL, redis_client,
                           jwks=JwksCache(min_refetch_s=10.0, clock=lambda: now[0]))
    verifier.verify(f"Bearer {issuer.token(AUDIENCE)}", SERVICE)
    fetches = issuer.jwks_requests
    issuer.keys["ES384"] = ("es384-rotated", ec.generate_private_key(ec.SECP384R1()))
    now[0] += 11.0
    verifier.verify(f"Bearer {issuer.token(AUDIENCE)}", SERVICE)
    assert issuer.jwks_requests == fetches + 1


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(issuer: LocalIssuer,
                                                                  redis_client: redis.Redis) -> None:
    now = [1000.0]
    verifier = JwtVerifier([issuer.trusted_issuer], PUBLIC_URL, redis_client,
                           jwks=JwksCache(min_refetch_s=10.0, clock=lambda: now[0]))
    verifier.verify(f"Bearer {issuer.token(AUDIENCE)}", SERVICE)
    fetches = issuer.jwks_requests
    forged = [issuer.token(AUDIENCE, headers={"kid": f"forged-{n}"}) for n in range(20)]
    assert [refusal(verifier, token) for token in forged] == ["unknown_kid"] * 20
    assert issuer.jwks_requests == fetches  # fetched less than 10 s ago: not again
    now[0] += 11.0
    assert refusal(verifier, forged[0]) == "unknown_kid"
    assert issuer.jwks_requests == fetches + 1


def test_an_unreachable_jwks_refuses(redis_client: redis.Redis) -> None:
    issuer = LocalIssuer()
    with issuer:
        trusted = issuer.trusted_issuer
        token = issuer.token(AUDIENCE)
    verifier = JwtVerifier([trusted], PUBLIC_URL, redis_client, jwks=JwksCache(timeout_s=1.0))
    assert refusal(verifier, token) == "jwks_unavailable"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz"])
def test_no_bearer_token_is_refused(verifier: JwtVerifier, authorization: str | None) -> None:
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(authorization, SERVICE)
    assert refused.value.code == "no_token"


def test_a_check_that_may_not_fetch_says_so_instead_of_fetching(verifier: JwtVerifier, issuer: LocalIssuer) -> None:
    """The event loop checks with may_fetch=False; only a JWKS fetch moves the check to a worker thread."""
    token = issuer.token(AUDIENCE)
    with pytest.raises(KeysNotCached):
        verifier.verify(f"Bearer {token}", SERVICE, may_fetch=False)
    assert issuer.jwks_requests == 0
    verifier.verify(f"Bearer {token}", SERVICE)  # fetches; the jti was not spent by the refused attempt
    verifier.verify(f"Bearer {issuer.token(AUDIENCE)}", SERVICE, may_fetch=False)  # cached now
    assert issuer.jwks_requests == 1


def test_feedback_may_be_signed_for_the_feedback_url(verifier: JwtVerifier, issuer: LocalIssuer) -> None:
    verifier.verify(f"Bearer {issuer.token(AUDIENCE + '/feedback')}", SERVICE, feedback=True)
    with pytest.raises(Unauthorized, match="bad_aud"):
        verifier.verify(f"Bearer {issuer.token(AUDIENCE + '/feedback')}", SERVICE)
