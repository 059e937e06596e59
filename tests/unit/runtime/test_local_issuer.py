"""LocalIssuer: the stand-in EHR issuer serves its JWKS on loopback and signs CDS Hooks JWTs."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from hilum.runtime.local_issuer import LocalIssuer

AUDIENCE = "http://127.0.0.1:8080/cds-services/hilum-cxr-patient-view"


def test_tokens_verify_against_the_served_jwks() -> None:
    with LocalIssuer(iss="https://ehr.test", rs384=True) as issuer:
        assert issuer.trusted_issuer.iss == "https://ehr.test"
        assert issuer.trusted_issuer.jku == issuer.jku and issuer.jku.startswith("http://127.0.0.1:")
        jwks = httpx.get(issuer.jku).json()
        assert issuer.jwks_requests == 1
        keys = {key["kid"]: key for key in jwks["keys"]}
        assert {key["alg"] for key in keys.values()} == {"ES384", "RS384"}
        assert all("d" not in key for key in keys.values())  # public halves only
        for alg in ("ES384", "RS384"):
            token = issuer.token(AUDIENCE, alg=alg)
            header = jwt.get_unverified_header(token)
            assert header["alg"] == alg and header["jku"] == issuer.jku and header["kid"] == issuer.kid(alg)
            claims = jwt.decode(token, jwt.PyJWK(keys[header["kid"]]).key, algorithms=[alg], audience=AUDIENCE)
            assert claims["iss"] == "https://ehr.test" and claims["exp"] - claims["iat"] == 300
            assert abs(claims["iat"] - time.time()) < 5
        assert issuer.token(AUDIENCE) != issuer.token(AUDIENCE)  # a fresh jti each time


def test_overrides_replace_or_remove_claims_and_header_fields() -> None:
    with LocalIssuer() as issuer:
        token = issuer.token(AUDIENCE, jti="fixed", exp=None, headers={"kid": None, "x5u": "https://x"})
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert "kid" not in header and header["x5u"] == "https://x"
        assert claims["jti"] == "fixed" and "exp" not in claims


def test_the_jwks_is_gone_once_stopped() -> None:
    issuer = LocalIssuer()
    with issuer:
        jku = issuer.jku
    with pytest.raises(httpx.HTTPError):
        httpx.get(jku, timeout=1.0)
    with pytest.raises(RuntimeError):
        _ = issuer.jku
