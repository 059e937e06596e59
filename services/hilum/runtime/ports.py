"""Loopback ports for the embedded stack: free ports, and settings that put every part on one."""

from __future__ import annotations

import socket
from pathlib import Path

from hilum.common.settings import (
    CdsSection,
    DatabaseSection,
    GrpcSection,
    HilumSettings,
    QueueSection,
    RedisSection,
    StorageSection,
    TritonSection,
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
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
                         reporting_port=free_port()),
        cds=CdsSection(port=free_port()),
        queue=QueueSection(worker_concurrency=worker_concurrency),
    )
