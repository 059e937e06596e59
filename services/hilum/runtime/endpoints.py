"""endpoints.json: where a running stack's doors are, so scripts, tests and other tools need not parse logs.

The stack writes it in its data directory once every door answers (atomically: a reader sees the whole
file or none) and removes it on a clean stop. A file whose pid is no longer alive is stale: left by a
stack that was killed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_serializer

from hilum.common.atomic_file import write_atomically

ENDPOINTS_FILE = "endpoints.json"


class TritonEndpoints(BaseModel):
    """The Triton server's three listeners."""

    model_config = ConfigDict(frozen=True)

    grpc: str  # "127.0.0.1:8101"
    http: str  # "http://127.0.0.1:8100"
    metrics: str  # "http://127.0.0.1:8102/metrics"


class DicomEndpoint(BaseModel):
    """The DICOM (DIMSE) SCP: the AE title to call and where it listens."""

    model_config = ConfigDict(frozen=True)

    ae_title: str  # "HILUM"
    host: str  # "127.0.0.1"
    port: int  # 11112

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class Endpoints(BaseModel):
    """The content of endpoints.json: the stack's process, its start time, and one key per door that exists.

    Doors a newer Hilum adds are kept (model_extra) rather than refused, so older readers still work.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    pid: int
    started_at: AwareDatetime
    cds: str | None = None  # CDS Hooks base URL: "http://127.0.0.1:8080"
    fhir: str | None = None  # FHIR R4 read API base URL: "http://127.0.0.1:8080/fhir"
    stow: str | None = None  # DICOMweb STOW-RS store resource: "http://127.0.0.1:8080/dicomweb/studies"
    ingestion_grpc: str | None = None  # "127.0.0.1:50051"
    grpc: dict[str, str] | None = None  # the other stages' gRPC APIs: {"inference": "127.0.0.1:50052", ...}
    triton: TritonEndpoints | None = None
    redis: str | None = None  # "redis://127.0.0.1:6390/0"
    dicom: DicomEndpoint | None = None
    # Each process's Prometheus endpoint, by its name in the stack:
    # {"grpc": "http://127.0.0.1:9101/metrics", ..., "cds": "http://127.0.0.1:8080/metrics"}
    metrics: dict[str, str] | None = None

    @field_serializer("started_at")
    def _utc_z(self, value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def live(self) -> bool:
        """Whether the process that wrote the file is still running; False means the file is stale."""
        return pid_alive(self.pid)

    def to_json(self) -> str:
        """The file's text: doors that do not exist are left out."""
        return self.model_dump_json(exclude_none=True, indent=2) + "\n"


def endpoints_path(data_dir: Path) -> Path:
    """Where the stack using data_dir keeps endpoints.json."""
    return data_dir / ENDPOINTS_FILE


def write_endpoints(data_dir: Path, endpoints: Endpoints) -> Path:
    """Write endpoints.json atomically (temp file in the same folder, fsync, rename); returns its path."""
    path = endpoints_path(data_dir)
    write_atomically(path, endpoints.to_json().encode())
    return path


def read_endpoints(data_dir: Path) -> Endpoints | None:
    """The endpoints.json in data_dir, or None when there is none.

    Check `.live` on the result: False means the stack that wrote it is gone and the file is stale.
    Raises pydantic.ValidationError (a ValueError) when the file is not an endpoints file.
    """
    try:
        text = endpoints_path(data_dir).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return Endpoints.model_validate_json(text)


def live_endpoints(data_dir: Path) -> Endpoints | None:
    """The endpoints of a stack running from data_dir, or None when none is (no file, or a stale one)."""
    endpoints = read_endpoints(data_dir)
    return endpoints if endpoints is not None and endpoints.live else None


def remove_endpoints(data_dir: Path) -> None:
    """Delete endpoints.json if it is there."""
    endpoints_path(data_dir).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and has not exited (an unreaped zombie counts as exited)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Linux: the state letter in /proc/<pid>/stat is Z; elsewhere, not known, so False."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
