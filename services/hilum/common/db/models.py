"""ORM tables: studies and their instances, stage results, rejections, dead letters and deliveries.

Stage results are unique per (Study Instance UID, model version): that constraint is what makes
every stage idempotent under redelivery.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, composite, mapped_column

from hilum.common.study import PatientInfo


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the ORM defaults use."""
    return datetime.now(UTC)


def stored_utc(moment: datetime) -> datetime:
    """An instant read back from a DateTime(timezone=True) column, with its zone: SQLite hands back naive UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base for every Hilum table."""


class StudyRow(Base):
    """A study Hilum has accepted at least one instance of, with its pipeline state."""

    __tablename__ = "studies"

    study_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_issuer: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_birth_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    # The five columns above, read and written as one PatientInfo.
    patient: Mapped[PatientInfo] = composite(
        "patient_id", "patient_issuer", "patient_name", "patient_birth_date", "patient_sex"
    )
    started: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    accession_number: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(64), default="")
    placer_order_number: Mapped[str] = mapped_column(String(64), default="", server_default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str] = mapped_column(Text, default="")
    # The FHIR R4 ImagingStudy (JSON) ingestion built from the instances received so far.
    imaging_study: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When the study is complete enough to hand to inference (last instance + stability window);
    # None once handed on. Set in the same transaction as the instance, so no handoff is ever lost.
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # When `hilum purge images` deleted the study's stored objects (retention); None while they are kept.
    images_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A prior the priors stage fetched from a PACS: analysed for comparison, never reported or published.
    comparison_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The trace its first instance came in on (W3C traceparent), continued when it is handed on; "": not traced.
    trace_context: Mapped[str] = mapped_column(String(64), default="", server_default="")


class InstanceRow(Base):
    """One stored DICOM instance; the object itself lives in the object store under object_key."""

    __tablename__ = "instances"

    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(
        ForeignKey("studies.study_instance_uid", ondelete="CASCADE"), index=True
    )
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    modality: Mapped[str] = mapped_column(String(16))
    view_position: Mapped[str] = mapped_column(String(16), default="")
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)
    spacing_row_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    spacing_column_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    object_key: Mapped[str] = mapped_column(String(512))
    # sha256 of the stored bytes: the same SOP Instance UID with other content is a conflict, not a duplicate.
    content_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class _StageResult:
    """Columns every per-(study, model version) result row has; the unique pair makes stages idempotent."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_instance_uid: Mapped[str] = mapped_column(
        ForeignKey("studies.study_instance_uid", ondelete="CASCADE"), index=True
    )
    model_version: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the serialized result message
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FindingsRow(_StageResult, Base):
    """Inference output for a study under one model version (payload: a StudyFindings)."""

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("study_instance_uid", "model_version", name="uq_findings_study_model"),)

    model_name: Mapped[str] = mapped_column(String(64))
    demo_weights: Mapped[bool] = mapped_column(Boolean)


class ReportRow(_StageResult, Base):
    """A published report for a study under one model version (payload: a PublishResult), with its bundle."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("study_instance_uid", "model_version", name="uq_reports_study_model"),)

    diagnostic_report_id: Mapped[str] = mapped_column(String(64))
    # The PriorComparison the report was drafted from: deliveries rebuild their messages from it.
    comparison: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    bundle_json: Mapped[str] = mapped_column(Text)
    bundle_path: Mapped[str] = mapped_column(String(1024))


class RejectionRow(Base):
    """An instance Hilum refused, and its quarantine: the reason, and where its original bytes are kept
    so an administrator can release (re-run acceptance) or delete it.
    """

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(256))
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    object_key: Mapped[str] = mapped_column(String(512), default="", server_default="")  # "" when not kept
    content_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    door: Mapped[str] = mapped_column(String(16), default="", server_default="")  # grpc, dimse, stow, pull
    status: Mapped[str] = mapped_column(String(16), default="held", server_default="held", index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeadLetterRow(Base):
    """A queue message that exhausted its retries or failed permanently, kept for replay."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(32))
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    error: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When `hilum dead-letters replay` handed the message to its queue again; None while it waits for a person.
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeliveryRow(Base):
    """One result's delivery to one destination (FHIR server, MLLP, PACS), retried until delivered or dead.

    Unique per (study, model version, destination, event): a redelivered task finds its row and sends
    nothing twice. event is what is sent: the preliminary report, or a later status change.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("study_instance_uid", "model_version", "destination", "event", name="uq_delivery"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_instance_uid: Mapped[str] = mapped_column(
        ForeignKey("studies.study_instance_uid", ondelete="CASCADE"), index=True
    )
    model_version: Mapped[str] = mapped_column(String(128))
    destination: Mapped[str] = mapped_column(String(16))  # fhir_server, mllp, pacs
    event: Mapped[str] = mapped_column(String(16))  # preliminary, amended, cancelled
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, delivered, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # What the destination answered on success: a resource location, an ACK control id, a SOP Instance UID.
    receipt: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class AuditOutboxRow(Base):
    """An AuditEvent (stored in the FHIR store) the syslog export has still to send; deleted once sent. Written in
    the same transaction as the event, so an event is never stored without being queued for export."""

    __tablename__ = "audit_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
