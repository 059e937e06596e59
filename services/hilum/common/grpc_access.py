"""Who may call Hilum's gRPC services, which carry PHI (instances, study status): a bearer token every call must
carry when one is configured (HILUM_GRPC__BEARER_TOKEN), and the rule that a service listening beyond loopback does
so only over TLS, with that token or with client certificates (mutual TLS).

The health service stays open: probes carry no token, and it tells nothing about any patient.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc

from hilum.common.addresses import host_of, is_loopback
from hilum.common.settings import GrpcSection

HEALTH_METHODS = "/grpc.health.v1.Health/"
MIN_TOKEN_LENGTH = 16


class ExposureRefused(ValueError):
    """A gRPC service asked to listen beyond loopback without the protection that needs."""


def check_exposure(address: str, section: GrpcSection) -> None:
    """Refuse (ExposureRefused) a service port beyond loopback without TLS and a token or client certificates, and a
    token too short to be a secret."""
    if section.bearer_token and len(section.bearer_token) < MIN_TOKEN_LENGTH:
        raise ExposureRefused(f"HILUM_GRPC__BEARER_TOKEN must be at least {MIN_TOKEN_LENGTH} characters "
                              "(e.g. openssl rand -hex 32)")
    if is_loopback(host_of(address)):
        return
    has_tls = section.tls_cert_file is not None
    if not has_tls or not (section.bearer_token or section.tls_require_client_cert):
        raise ExposureRefused(
            f"the gRPC services would listen on {host_of(address)}, beyond loopback, and they carry PHI: set TLS "
            "(HILUM_GRPC__TLS_CERT_FILE, HILUM_GRPC__TLS_KEY_FILE) and a bearer token (HILUM_GRPC__BEARER_TOKEN) or "
            "client certificates (HILUM_GRPC__TLS_REQUIRE_CLIENT_CERT), or listen on 127.0.0.1")


def _refuse(request: bytes, context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required (authorization metadata)")


class BearerTokenCheck(grpc.ServerInterceptor):  # type: ignore[misc]
    """Lets a call through only with "authorization: Bearer <token>" (compared in constant time); health calls
    always."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()
        self._refusal = grpc.unary_unary_rpc_method_handler(_refuse)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith(HEALTH_METHODS):
            return continuation(details)
        supplied = next((str(value) for key, value in details.invocation_metadata or () if key == "authorization"), "")
        if hmac.compare_digest(supplied.encode(), self._expected):
            return continuation(details)
        return self._refusal


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class BearerToken(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds "authorization: Bearer <token>" to every call a client channel makes."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Callable[[Any, Any], Any], details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return continuation(_CallDetails(details.method, details.timeout, metadata, details.credentials,
                                         details.wait_for_ready, details.compression), request)
