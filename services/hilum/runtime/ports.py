"""Loopback ports for the embedded stack: free ports, settings that put every part on one, and the check
that the ports a stack needs are free before anything starts.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hilum.common.settings import (
    CdsSection,
    DatabaseSection,
    DicomSection,
    GrpcSection,
    HilumSettings,
    IngestionSection,
    MetricsSection,
    QueueSection,
    RedisSection,
    StorageSection,
    TritonSection,
)


@dataclass(frozen=True)
class Port:
    """One port the stack listens on, and what a person sets to move it."""

    host: str
    number: int
    setting: str  # the environment variable that moves it: "HILUM_CDS__PORT"
    purpose: str  # what listens there: "the CDS Hooks service"


class PortUnavailable(RuntimeError):
    """A port the stack needs cannot be listened on; the message names it and the setting that moves it."""


class PortInUse(PortUnavailable):
    """Something else already listens on a port the stack needs."""

    def __init__(self, port: Port) -> None:
        super().__init__(f"port {port.number} is already in use (set {port.setting} to move {port.purpose})")
        self.port = port


class PortsClash(PortUnavailable):
    """Two parts of the stack are configured on the same port."""

    def __init__(self, first: Port, second: Port) -> None:
        super().__init__(f"port {first.number} is set for both {first.purpose} ({first.setting}) and "
                         f"{second.purpose} ({second.setting}); give each its own")
        self.ports = (first, second)


def ensure_free(ports: Iterable[Port]) -> None:
    """Raise PortsClash if two of ports share a number, PortInUse for the first one something holds, or
    PortUnavailable when a port cannot be listened on for another reason (an address not on this host).
    """
    claimed: dict[int, Port] = {}
    for port in ports:
        if port.number in claimed:
            raise PortsClash(claimed[port.number], port)
        claimed[port.number] = port
    for port in claimed.values():
        try:
            _try_bind(port.host, port.number)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(port) from None
            raise PortUnavailable(f"cannot listen on {port.host}:{port.number} ({exc.strerror}; set "
                                  f"{port.setting} to move {port.purpose})") from None


def is_free(host: str, number: int) -> bool:
    """Whether a server could listen on host:number now."""
    try:
        _try_bind(host, number)
    except OSError:
        return False
    return True


def _try_bind(host: str, number: int) -> None:
    """Bind and release host:number; raises OSError as a server would get it.

    SO_REUSEADDR as the servers set it, so a port whose last connections linger in TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, number))


# Ports free_port has handed out in this process: the kernel may offer a just-closed port again, and two parts of
# one stack must never be given the same one.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that this process has not been given before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def loopback_triton(model_repository: Path, server_venv: Path) -> TritonSection:
    """Triton settings on free loopback ports."""
    return TritonSection(grpc_url=f"127.0.0.1:{free_port()}", http_port=free_port(), metrics_port=free_port(),
                         model_repository=model_repository, server_venv=server_venv)


def loopback_settings(root: Path, model_repository: Path, server_venv: Path, database_url: str = "",
                      worker_concurrency: int = 1) -> HilumSettings:
    """Settings for a whole stack on free loopback ports, keeping its data and output under root.

    For tests and benchmarks that run beside other stacks; an empty database_url means SQLite in root.
    """
    return HilumSettings(
        redis=RedisSection(url=f"redis://127.0.0.1:{free_port()}/0"),
        database=DatabaseSection(url=database_url),
        storage=StorageSection(data_dir=root / "data", output_dir=root / "out"),
        triton=loopback_triton(model_repository, server_venv),
        grpc=GrpcSection(ingestion_port=free_port(), inference_port=free_port(), priors_port=free_port(),
                         reporting_port=free_port(), publishing_port=free_port()),
        cds=CdsSection(port=free_port()),
        dicom=DicomSection(port=free_port()),
        metrics=MetricsSection(process_ports={name: free_port() for name in MetricsSection().process_ports}),
        queue=QueueSection(worker_concurrency=worker_concurrency),
        # No stability window: a study is complete once submitted; the assembler looks often.
        ingestion=IngestionSection(stability_window_s=0.0, assembly_poll_s=0.1),
    )
