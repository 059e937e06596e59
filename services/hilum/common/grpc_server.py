"""gRPC server plumbing shared by the five services: health service (and its plaintext port), TLS, message
limits, error mapping.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from hilum.common.errors import PermanentError, TransientError
from hilum.common.grpc_access import BearerTokenCheck, check_exposure
from hilum.common.grpc_tls import client_channel, server_credentials
from hilum.common.settings import GrpcSection

log = logging.getLogger(__name__)

In = TypeVar("In", bound=Message)
Out = TypeVar("Out", bound=Message)
Core = TypeVar("Core")


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Options that let whole radiographs (tens of MB) through, for servers and clients alike."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


@dataclass(frozen=True)
class StartedServer:
    """A started service server, the plaintext health-only server beside it (if any), and the health both report."""

    server: grpc.Server
    health: health.HealthServicer
    health_server: grpc.Server | None = None

    def stop(self, grace_s: float | None) -> None:
        """Report NOT_SERVING on both ports, let in-flight calls finish for up to grace_s, then close the health port.

        The health port stays up while the service port drains, so a probe reads NOT_SERVING rather than a refusal.
        """
        self.close(self.drain(grace_s))

    def drain(self, grace_s: float | None) -> threading.Event:
        """Report NOT_SERVING and stop taking calls; the event is set once in-flight calls end (within grace_s)."""
        self.health.enter_graceful_shutdown()
        drained: threading.Event = self.server.stop(grace_s)
        return drained

    def close(self, drained: threading.Event) -> None:
        """Wait for drain's event, then close the health port."""
        drained.wait()
        if self.health_server is not None:
            self.health_server.stop(None).wait()


def _bind(server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None) -> None:
    """Add a plaintext or TLS port; fail loudly when the address cannot be bound."""
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # recent grpcio raises instead of returning 0
        raise RuntimeError(f"cannot bind gRPC server to {address} (is the port in use?)") from exc
    if bound == 0:
        raise RuntimeError(f"cannot bind gRPC server to {address} (is the port in use?)")


# Calls a stage's gRPC server runs at once unless its wiring says otherwise.
DEFAULT_SERVER_THREADS = 8


def create_server(
    address: str,
    service_names: list[str],
    add_servicers: Callable[[grpc.Server], None],
    max_message_bytes: int,
    max_workers: int = DEFAULT_SERVER_THREADS,
    *,
    section: GrpcSection | None = None,
) -> StartedServer:
    """A started server on address with the standard gRPC health service reporting SERVING, running max_workers calls
    at once.

    With section: TLS on address when it names a certificate, every call but health's checked for its bearer token
    when it names one, an address beyond loopback refused without both (grpc_access.check_exposure), and, when its
    health_port > 0, a plaintext server on health_host (else host):health_port carrying only the same health service
    (for Kubernetes gRPC probes).
    """
    credentials = None if section is None else server_credentials(section)  # a misconfiguration fails first
    if section is not None:
        check_exposure(address, section)
    interceptors = [BearerTokenCheck(section.bearer_token)] if section is not None and section.bearer_token else []
    # No SO_REUSEPORT: a second server on a taken port must fail, not silently share its calls.
    options = [*channel_options(max_message_bytes), ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options,
                         interceptors=interceptors)
    add_servicers(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _bind(server, address, credentials)
    server.start()
    if section is None or section.health_port <= 0:
        return StartedServer(server, health_servicer)
    health_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
    try:
        _bind(health_server, f"{section.health_host or section.host}:{section.health_port}", None)
    except RuntimeError:
        server.stop(None).wait()  # only a started server lets go of its port
        raise
    health_server.start()
    return StartedServer(server, health_servicer, health_server)


def serve_until_signalled(
    servers: Sequence[StartedServer], grace_s: float = 10.0, first: Sequence[Callable[[], None]] = ()
) -> None:
    """Block until SIGTERM or SIGINT, then stop every server: all report NOT_SERVING and stop taking calls at once,
    then each lets its in-flight calls finish (within grace_s of the signal). `first`: what else the process runs
    (the DICOM SCP, the assembler), stopped while the servers drain, each by its own stop function."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    drained = [server.drain(grace_s) for server in servers]
    for stop_other in first:
        stop_other()
    for server, done in zip(servers, drained, strict=True):
        server.close(done)


class StageServicer(Generic[Core]):
    """Base of the stages' gRPC servicers: holds the stage's core, to which every method delegates."""

    def __init__(self, core: Core) -> None:
        self.core = core


def run_stage(context: grpc.ServicerContext, core: Callable[[In], Out], request: In) -> Out:
    """Call a stage's core function, mapping its errors to status codes a client can act on: UNAVAILABLE (try again)
    for a transient error and for anything unexpected (the database or the disk failing), named by its type only (a
    database error quotes its parameters), FAILED_PRECONDITION for a permanent one."""
    try:
        return core(request)
    except TransientError as exc:
        code, reason = grpc.StatusCode.UNAVAILABLE, str(exc)
    except PermanentError as exc:
        code, reason = grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    except Exception as exc:
        log.error("call failed; answered UNAVAILABLE", extra={"error_type": type(exc).__name__})
        code, reason = grpc.StatusCode.UNAVAILABLE, f"unexpected {type(exc).__name__}; try again later"
    context.abort(code, reason)  # raises: the call ends with this status
    raise RuntimeError("grpc.ServicerContext.abort returned")


def peer_address(peer: str) -> str:
    """The network address of a gRPC peer ("ipv4:10.0.0.5:41234" → "10.0.0.5", "ipv6:[::1]:5" → "::1"); "" for one
    gRPC does not name by address (a Unix socket)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return ""


def is_serving(address: str, service: str = "", timeout_s: float = 1.0, section: GrpcSection | None = None) -> bool:
    """Whether the gRPC health service at address reports service as SERVING (over TLS as section says)."""
    with client_channel(address, section, []) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
