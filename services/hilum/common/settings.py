"""Configuration shared by every Hilum service: pydantic-settings sections read from HILUM_* variables.

Each service builds one settings object from these sections (nested variables use "__", e.g.
HILUM_REDIS__URL) and passes it down; nothing reads the environment after start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

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
    # The tube-and-line landmark model run beside the findings model; "" runs none (no device is ever reported).
    devices_model: str = "cxr_devices"
    # The virtual environment holding the nvidia-pytriton wheel whose tritonserver binary is run.
    server_venv: Path = Path(".venv-triton")
    request_timeout_s: float = 30.0


class GrpcSection(BaseModel):
    """Loopback addresses of the five gRPC services and the largest message they accept."""

    host: str = "127.0.0.1"
    ingestion_port: int = 50051
    inference_port: int = 50052
    priors_port: int = 50053
    reporting_port: int = 50054
    publishing_port: int = 50055
    max_message_bytes: int = 256 * 1024 * 1024
    # A second, plaintext port that serves only grpc.health.v1 (for Kubernetes gRPC probes, which cannot
    # speak TLS); 0: health is served on the service port only. health_host: where it listens ("": host).
    health_port: int = 0
    health_host: str = ""
    # TLS for the service ports: a server certificate and key (PEM). tls_ca_file is the CA that clients
    # check the server against and, with tls_require_client_cert, the CA client certificates must chain to.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_require_client_cert: bool = False
    # The bearer token every call must carry (authorization metadata), which clients of these settings send; "": none.
    # Beyond loopback the services listen only with TLS and this token or client certificates (grpc_access.py).
    bearer_token: str = ""

    def address(self, port: int) -> str:
        """host:port on this section's host."""
        return f"{self.host}:{port}"

    def port_for(self, stage: str) -> int:
        """The port of one stage's gRPC server: "ingestion", "inference", "priors", "reporting" or "publishing"."""
        ports = {"ingestion": self.ingestion_port, "inference": self.inference_port,
                 "priors": self.priors_port, "reporting": self.reporting_port,
                 "publishing": self.publishing_port}
        return ports[stage]


class QueueSection(BaseModel):
    """Celery reliability knobs; the visibility timeout must exceed the longest task."""

    visibility_timeout_s: int = 3600
    # Celery enforces it in a prefork pool only; every stage's worker runs threads, each call under its own timeout.
    task_time_limit_s: int = 600
    max_retries: int = 5
    retry_backoff_max_s: int = 60
    worker_concurrency: int = 1
    # The inference worker runs this many tasks at once, in threads: while one waits on Triton the others decode
    # and preprocess, and the requests in flight together reach Triton's dynamic batcher as one batch.
    inference_concurrency: int = Field(default=8, ge=1)
    # How long priors waits for a recently received prior study to finish its own inference.
    prior_wait_s: int = 300
    # A study in flight that no stage has moved for this long is handed on again from the start, and a pending
    # delivery untouched this long although due is sent to the publishing queue again: its queue message was lost (a
    # worker or the broker died between taking it and recording it). Every stage is idempotent, so a study that was
    # only slow costs its repeat. Keep it above the longest queue wait and prior_wait_s.
    stalled_after_s: int = Field(default=900, gt=0)


class MetricsSection(BaseModel):
    """Each process's Prometheus endpoint (GET /metrics on host:port); port 0: none. The CDS app serves
    /metrics on its own port instead. process_ports: the embedded stack's one port per process.
    """

    host: str = "127.0.0.1"
    port: int = 0  # one process per host (a Kubernetes pod); the embedded stack refuses it and uses process_ports
    # The embedded stack (`hilum up`, `hilum demo`) runs many processes on one host: each gets its own port, by its
    # name in the stack (9101, 9103-9105); a process left out serves no metrics. The CDS app is not here; the DICOM
    # SCP and the assembler run in the grpc process and count in its metrics.
    process_ports: dict[str, int] = Field(default_factory=lambda: {
        "grpc": 9101, "inference-worker": 9103, "ingestion-priors-publishing-worker": 9104, "reporting-worker": 9105,
    })


class ReferencesSection(BaseModel):
    """The secret that keys Hilum's references to studies and patients (HMAC-SHA256): the study reference in logs,
    traces and `hilum status`, and the patient part of the CDS cache's Redis keys. "": the file reference.key in the
    data folder, which the embedded stack creates; with neither, plain SHA-256, which anyone can recompute from a
    guessed MRN or UID. Every process of a deployment needs the same key; changing it changes every reference."""

    key: str = ""


class TelemetrySection(BaseModel):
    """Where traces go: an OpenTelemetry collector's OTLP/gRPC endpoint (e.g. http://otel-collector:4317); "": the
    standard OTEL_EXPORTER_OTLP_ENDPOINT, and with neither no process traces (the no-op tracer costs nothing)."""

    otlp_endpoint: str = ""


class AuditSection(BaseModel):
    """The audit trail: every AuditEvent is stored in Hilum's FHIR store; with `syslog_url`, each is also sent to a
    SIEM or an IHE ATNA audit record repository as an RFC 5424 message carrying the DICOM audit message (ITI-20).

    syslog_url: "tls://host:6514" (RFC 5425; the repository is checked against tls_ca_file, the system's roots when
    unset, and tls_cert_file/tls_key_file are presented for ATNA's mutual node authentication),
    "tcp://host:601" (octet-counted, plaintext: a trusted network only) or "udp://host:514" (RFC 5426: one datagram
    per event, lost without notice if the network drops it); "": no export."""

    site: str = "hilum"  # the audit enterprise site: the hospital or deployment the events are from
    syslog_url: str = ""
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    syslog_timeout_s: float = Field(default=10.0, gt=0)
    # Events sent per round; a round that fails is sent again, whole, after a backoff of up to a minute.
    export_batch: int = Field(default=200, ge=1)


class HealthSection(BaseModel):
    """Liveness for processes without a port (Celery workers, the assembler): a file touched every
    heartbeat_interval_s while the process does its work, which a probe checks for age; None: no file.
    """

    heartbeat_file: Path | None = None
    heartbeat_interval_s: float = Field(default=10.0, gt=0)


class TrustedIssuer(BaseModel):
    """An EHR allowed to call the CDS services: its JWT `iss` and the one JWKS URL its keys are read from."""

    iss: str
    jku: str


class CdsSection(BaseModel):
    """The CDS Hooks HTTP service and whom it trusts (HILUM_CDS__TRUSTED_ISSUERS: a JSON list of
    {"iss", "jku"}; none trusted: every service call is refused).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    # The base URL the EHR calls (behind a proxy, its public address); JWT `aud` is checked against it.
    public_url: str = ""
    clock_skew_s: int = 60
    # order-select and order-sign show a chest X-ray AI result only when it is at most this old.
    order_lookback_days: int = Field(default=90, ge=1)
    # uvicorn worker processes; each adds a core's worth of capacity (the JWT check and cards are CPU-bound).
    workers: int = Field(default=1, ge=1)
    # How long a call waits on Redis before it fails with 503 (the results store is down or stalled).
    redis_timeout_s: float = Field(default=2.0, gt=0)

    @property
    def base_url(self) -> str:
        """public_url, else http://{host}:{port}; without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class FhirSection(BaseModel):
    """How the FHIR Hilum emits names the hospital's patient and order (set the systems to the hospital's own)."""

    patient_identifier_system: str = "urn:hilum:dicom:patient-id"
    # Bundles refer to the hospital's Patient by its MRN; a Patient is created only where this is set.
    create_patient: bool = False
    # Identifier systems of the order a study fulfils: Accession Number and placer order number.
    accession_identifier_system: str = "urn:hilum:dicom:accession-number"
    placer_order_identifier_system: str = "urn:hilum:placer-order-number"
    # How the report names its order (basedOn): "conditional" (the server finds the ServiceRequest by its
    # identifier; the transaction fails while it does not exist), "identifier" (logical, never fails), "none".
    order_reference: Literal["conditional", "identifier", "none"] = "conditional"


class FhirApiClient(BaseModel):
    """A client of the FHIR read API (SMART Backend Services): its id, its key, the scopes it may get.

    The key is a JWKS URL (`jwks_url`) or a PEM public key (`public_key_pem`); one of them is required.
    """

    client_id: str
    jwks_url: str = ""
    public_key_pem: str = ""
    scopes: list[str] = Field(default_factory=lambda: ["system/*.rs"])


class FhirApiSection(BaseModel):
    """The FHIR R4 read API at <cds base>/fhir and its OAuth2 token endpoint."""

    clients: list[FhirApiClient] = Field(default_factory=list)
    # No token needed: only for the embedded stack, and only while the server listens on loopback.
    open_on_loopback: bool = False
    token_lifetime_s: int = Field(default=300, ge=30, le=3600)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=500, ge=1)


class FhirServerConnection(BaseModel):
    """How Hilum reaches a hospital's FHIR R4 server: its base URL and how it authenticates; empty `url`: none."""

    url: str = ""
    # A static bearer token, if the server wants one (read from a secret, never logged).
    bearer_token: str = ""
    # Or SMART Backend Services: the server's token endpoint, Hilum's client id there, the PEM private key
    # (RSA: RS384, EC P-384: ES384) whose public key the server registered, its key id, the scopes asked for.
    token_url: str = ""
    client_id: str = ""
    private_key_file: Path | None = None
    key_id: str = ""
    scope: str = "system/*.rs"
    timeout_s: float = Field(default=30.0, gt=0)


class FhirDestination(FhirServerConnection):
    """An external FHIR server results are published to as transactions; empty `url`: none."""

    scope: str = "system/*.crus"
    # Servers that refuse large conditional transactions (Medplum: 8 entries) get the bundle in consecutive
    # parts of at most this many entries, later parts referring to what earlier ones created; 0: one transaction.
    max_entries_per_transaction: int = Field(default=0, ge=0)


class MllpDestination(BaseModel):
    """An HL7 v2 interface (MLLP, optionally TLS) that receives ORU^R01; empty `host`: none."""

    host: str = ""
    port: int = 2575
    timeout_s: float = Field(default=30.0, gt=0)
    sending_application: str = "HILUM"
    sending_facility: str = "HILUM"
    receiving_application: str = ""
    receiving_facility: str = ""
    # TLS: a CA file turns it on; a client certificate and key are sent where the peer wants them.
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


class PacsDestination(BaseModel):
    """The PACS the DICOM SR goes to: by STOW-RS (`stow_url`) or by C-STORE (`ae_title`, host, port)."""

    stow_url: str = ""
    ae_title: str = ""
    host: str = ""
    port: int = 104
    calling_ae_title: str = "HILUM"
    timeout_s: float = Field(default=30.0, gt=0)


class PublishSection(BaseModel):
    """Where each result is delivered, and how often a failed delivery is retried before it is dead-lettered."""

    fhir_server: FhirDestination = Field(default_factory=FhirDestination)
    mllp: MllpDestination = Field(default_factory=MllpDestination)
    pacs: PacsDestination = Field(default_factory=PacsDestination)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)


class PriorsFhirServer(FhirServerConnection):
    """The hospital's FHIR server that priors searches for earlier chest radiographs and their reports (read only)."""

    scope: str = "system/Patient.rs system/ImagingStudy.rs system/DiagnosticReport.rs"
    # Search results are asked for in pages of page_size (_count); at most max_pages pages are read per search.
    page_size: int = Field(default=20, ge=1)
    max_pages: int = Field(default=5, ge=1)
    # DICOM Issuer of Patient ID -> the FHIR identifier system of that issuer's MRNs. Empty: every study's
    # PatientID is searched in fhir.patient_identifier_system. Otherwise a study whose issuer is not listed
    # is not searched (its MRN could be another patient's in the hospital's system).
    issuer_systems: dict[str, str] = Field(default_factory=dict)


class PriorsSection(BaseModel):
    """Where priors looks for a patient's earlier chest radiograph: the sources, in the order they are asked
    ("store": Hilum's own store; "pacs": the PACS of the `pacs` section, whose prior images are fetched and analysed;
    "fhir": the hospital's FHIR server, `fhir_server`).
    """

    sources: list[Literal["store", "pacs", "fhir"]] = Field(default=["store"])  # pydantic copies it per instance
    fhir_server: PriorsFhirServer = Field(default_factory=PriorsFhirServer)


class IngestionSection(BaseModel):
    """What every door accepts, and when a study is complete enough to analyse."""

    # A study is handed to inference once no instance arrived for this long (0: at once).
    stability_window_s: float = 2.0
    # How often the assembler looks for complete studies.
    assembly_poll_s: float = 0.5
    # Body Part Examined values that mean the chest (upper case); a missing value is accepted and noted.
    chest_body_parts: list[str] = Field(default_factory=lambda: ["CHEST", "THORAX", "LUNG", "CHEST_LAT"])
    # Secondary Capture images of the chest are refused unless this is set.
    accept_secondary_capture: bool = False
    # Degenerate images are "not assessable": smaller than this on a side, or longer than wide beyond this.
    min_image_side_px: int = 128
    max_aspect_ratio: float = 3.0


class DicomSection(BaseModel):
    """The DICOM (DIMSE) door: a C-STORE and C-ECHO SCP."""

    ae_title: str = "HILUM"
    host: str = "127.0.0.1"
    port: int = 11112
    # Calling AE titles allowed to store; empty allows any.
    allowed_calling_aets: list[str] = Field(default_factory=list)
    max_associations: int = 10  # concurrent associations; one more is rejected (transient, local limit)
    # DICOM TLS (PS3.15 B.9): all three set turns TLS on.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None


class PacsSection(BaseModel):
    """A PACS Hilum pulls new chest radiographs from (`hilum pull`) and, with priors.sources "pacs", finds and fetches
    priors on; empty: none."""

    dicomweb_url: str = ""  # e.g. http://pacs:8042/dicom-web (QIDO-RS and WADO-RS)
    ae_title: str = ""  # a DIMSE-only PACS: C-FIND / C-MOVE peer
    host: str = ""
    port: int = 104
    poll_interval_s: float = 60.0


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
    fhir_api: FhirApiSection = Field(default_factory=FhirApiSection)
    publish: PublishSection = Field(default_factory=PublishSection)
    priors: PriorsSection = Field(default_factory=PriorsSection)
    ingestion: IngestionSection = Field(default_factory=IngestionSection)
    dicom: DicomSection = Field(default_factory=DicomSection)
    pacs: PacsSection = Field(default_factory=PacsSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    references: ReferencesSection = Field(default_factory=ReferencesSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    health: HealthSection = Field(default_factory=HealthSection)

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
            if value is None:  # unset optional values stay unset
                continue
            # Strings as they are; numbers, booleans and lists as JSON, which pydantic-settings parses back.
            env[f"HILUM_{section.upper()}__{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env
