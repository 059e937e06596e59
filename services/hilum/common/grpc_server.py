"""gRPC server plumbing shared by the five services: health service, message limits, error mapping."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Generic, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from hilum.common.errors import PermanentError, TransientError

In = TypeVar("In", bound=Message)
Out = TypeVar("Out", bound=Message)
Core = TypeVar("Core")


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Options that let whole radiographs (tens of MB) through, for servers and clients alike."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def create_server(
    address: str,
    service_names: list[str],
    add_servicers: Callable[[grpc.Server], None],
    max_message_bytes: int,
    max_workers: int = 8,
) -> grpc.Server:
    """A started server on address with the standard gRPC health service reporting SERVING."""
    # No SO_REUSEPORT: a second server on a taken port must fail, not silently share its calls.
    options = [*channel_options(max_message_bytes), ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
    add_servicers(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # recent grpcio raises instead of returning 0
        raise RuntimeError(f"cannot bind gRPC server to {address} (is the port in use?)") from exc
    if bound == 0:
        raise RuntimeError(f"cannot bind gRPC server to {address} (is the port in use?)")
    server.start()
    return server


def serve_until_signalled(server: grpc.Server, grace_s: float = 10.0) -> None:
    """Block until SIGTERM or SIGINT, then stop accepting calls and let in-flight ones finish."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace_s).wait()


class StageServicer(Generic[Core]):
    """Base of the stages' gRPC servicers: holds the stage's core, to which every method delegates."""

    def __init__(self, core: Core) -> None:
        self.core = core


def run_stage(context: grpc.ServicerContext, core: Callable[[In], Out], request: In) -> Out:
    """Call a stage's core function, mapping its errors to status codes a client can act on."""
    try:
        return core(request)
    except TransientError as exc:
        code, reason = grpc.StatusCode.UNAVAILABLE, str(exc)
    except PermanentError as exc:
        code, reason = grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    context.abort(code, reason)  # raises: the call ends with this status
    raise RuntimeError("grpc.ServicerContext.abort returned")


def is_serving(address: str, service: str = "", timeout_s: float = 1.0) -> bool:
    """Whether the gRPC health service at address reports service as SERVING."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
