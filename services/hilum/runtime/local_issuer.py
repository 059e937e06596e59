"""A local stand-in for an EHR's CDS Hooks JWT issuer, for the demo, tests and benchmarks.

It holds an ES384 (optionally also an RS384) key pair, serves the public keys as a JWKS on loopback, and
signs CDS Hooks bearer tokens the way an EHR does (CDS Hooks 2.0, "Trusting CDS Clients").
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from hilum.common.settings import TrustedIssuer

JWKS_PATH = "/jwks.json"
TOKEN_LIFETIME_S = 300

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class LocalIssuer:
    """Signs CDS Hooks JWTs and serves their JWKS at http://127.0.0.1:<free port>/jwks.json while started
    (a context manager). `jwks_requests` counts the JWKS fetches it answered.
    """

    def __init__(self, iss: str = "https://ehr.hilum.local", *, rs384: bool = False) -> None:
        self.iss = iss
        self.keys: dict[str, tuple[str, PrivateKey]] = {"ES384": (f"es384-{uuid.uuid4().hex[:8]}",
                                                                  ec.generate_private_key(ec.SECP384R1()))}
        if rs384:
            self.keys["RS384"] = (f"rs384-{uuid.uuid4().hex[:8]}",
                                  rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.jwks_requests = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys as a JWK Set, each with its kid, alg and use."""
        keys: list[dict[str, Any]] = []
        for alg, (kid, private) in self.keys.items():
            public = private.public_key()
            jwk = (ECAlgorithm.to_jwk(public, as_dict=True) if isinstance(public, ec.EllipticCurvePublicKey)
                   else RSAAlgorithm.to_jwk(public, as_dict=True))
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": keys}

    def start(self) -> LocalIssuer:
        """Serve the JWKS on a free loopback port."""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                outer.jwks_requests += 1
                body = json.dumps(outer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Quiet: the stack's logs are JSON only."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving the JWKS."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def jku(self) -> str:
        """The JWKS URL (only while started)."""
        if self._server is None:
            raise RuntimeError("the local issuer is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}{JWKS_PATH}"

    @property
    def trusted_issuer(self) -> TrustedIssuer:
        """This issuer as HILUM_CDS__TRUSTED_ISSUERS lists it."""
        return TrustedIssuer(iss=self.iss, jku=self.jku)

    def kid(self, alg: str = "ES384") -> str:
        """The kid of this issuer's key for `alg`."""
        return self.keys[alg][0]

    def private_key(self, alg: str = "ES384") -> PrivateKey:
        """The private key for `alg` (tests sign odd tokens with it)."""
        return self.keys[alg][1]

    def token(self, audience: str, *, alg: str = "ES384", headers: dict[str, Any] | None = None,
              **overrides: Any) -> str:
        """A CDS Hooks bearer JWT for `audience` (the service URL): fresh jti, iat now, exp in 300 s, kid and
        jku in the header. `overrides` replace claims and `headers` header fields; a None value removes one.
        """
        now = int(time.time())
        claims = {"iss": self.iss, "aud": audience, "iat": now, "exp": now + TOKEN_LIFETIME_S,
                  "jti": uuid.uuid4().hex, **overrides}
        fields = {"kid": self.kid(alg), **({"jku": self.jku} if self._server else {}), **(headers or {})}
        return jwt.encode({k: v for k, v in claims.items() if v is not None}, self.private_key(alg), algorithm=alg,
                          headers={k: v for k, v in fields.items() if v is not None})
