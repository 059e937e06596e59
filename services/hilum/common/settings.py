"""Configuration shared by every Hilum service: pydantic-settings sections read from HILUM_* variables.

Each service builds one settings object from these sections (nested variables use "__", e.g.
HILUM_REDIS__URL) and passes it down; nothing reads the environment after start-up.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".hilum")


class RedisSection(BaseModel):
    """The Redis instance used as Celery broker, result cache and CDS view cache."""

    url: str = "redis://127.0.0.1:6390/0"


class DatabaseSection(BaseModel):
    """SQLAlchemy URL; empty means a SQLite file inside the data directory."""

    url: str = ""


class StorageSection(BaseModel):
    """Filesystem locations: the object store for DICOM and the folder FHIR bundles are written to."""

    data_dir: Path = DEFAULT_DATA_DIR
    output_dir: Path = Path("out")

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"


class TritonSection(BaseModel):
    """Where the Triton server listens and which models Hilum asks it for."""

    grpc_url: str = "127.0.0.1:8101"
    http_port: int = 8100
    metrics_port: int = 8102
    model_repository: Path = Path("model_repository")
    findings_model: str = "cxr_findings"
    # The virtual environment holding the nvidia-pytriton wheel whose tritonserver binary is run.
    server_venv: Path = Path(".venv-triton")
    request_timeout_s: float = 30.0


class GrpcSection(BaseModel):
    """Loopback addresses of the four gRPC services and the largest message they accept."""

    host: str = "127.0.0.1"
    ingestion_port: int = 50051
    inference_port: int = 50052
    priors_port: int = 50053
    reporting_port: int = 50054
    max_message_bytes: int = 256 * 1024 * 1024

    def address(self, port: int) -> str:
        """host:port on this section's host."""
        return f"{self.host}:{port}"

    def port_for(self, stage: str) -> int:
        """The port of one stage's gRPC server: "ingestion", "inference", "priors" or "reporting"."""
        ports = {"ingestion": self.ingestion_port, "inference": self.inference_port,
                 "priors": self.priors_port, "reporting": self.reporting_port}
        return ports[stage]


class QueueSection(BaseModel):
    """Celery reliability knobs; the visibility timeout must exceed the longest task."""

    visibility_timeout_s: int = 3600
    task_time_limit_s: int = 600
    max_retries: int = 5
    retry_backoff_max_s: int = 60
    worker_concurrency: int = 1
    # How long priors waits for a recently received prior study to finish its own inference.
    prior_wait_s: int = 300


class CdsSection(BaseModel):
    """The CDS Hooks HTTP service."""

    host: str = "127.0.0.1"
    port: int = 8080


class FhirSection(BaseModel):
    """How Hilum identifies patients in the FHIR it emits (set to the hospital's MRN system)."""

    patient_identifier_system: str = "urn:hilum:dicom:patient-id"


class HilumSettings(BaseSettings):
    """Settings for one Hilum process, read once from HILUM_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="HILUM_", env_nested_delimiter="__", extra="ignore")

    redis: RedisSection = Field(default_factory=RedisSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    triton: TritonSection = Field(default_factory=TritonSection)
    grpc: GrpcSection = Field(default_factory=GrpcSection)
    queue: QueueSection = Field(default_factory=QueueSection)
    cds: CdsSection = Field(default_factory=CdsSection)
    fhir: FhirSection = Field(default_factory=FhirSection)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.storage.data_dir / 'hilum.db').resolve()}"


def settings_env(settings: HilumSettings) -> dict[str, str]:
    """The HILUM_* environment that reproduces settings in a child process."""
    env: dict[str, str] = {}
    for section, values in settings.model_dump(mode="json").items():
        for key, value in values.items():
            env[f"HILUM_{section.upper()}__{key.upper()}"] = str(value)
    return env
