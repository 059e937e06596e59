"""ORM tables of the FHIR read API: every version of every resource, the current one with its search columns,
and the token values (codes, identifiers, patient identifiers) search matches on.

Instants are stored as integer microseconds since the epoch (UTC): exact, portable across SQLite and
PostgreSQL, and cheap to index and compare.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hilum.common.db.models import Base


class FhirResourceVersionRow(Base):
    """One version of one resource (kept for vread); a deleted version is a tombstone with no content."""

    __tablename__ = "fhir_resource_versions"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated_us: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean)
    resource: Mapped[str] = mapped_column(Text)  # the JSON as served, meta included; "" for a tombstone


class FhirResourceRow(Base):
    """The current version of a resource, with the columns search filters and sorts on.

    `seq` never changes once assigned, so (last_updated_us, seq) and seq alone are stable paging keys.
    """

    __tablename__ = "fhir_resources"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", name="uq_fhir_resource"),
        Index("ix_fhir_resources_type_seq", "resource_type", "seq"),  # the default (storage) order
        Index("ix_fhir_resources_patient", "resource_type", "patient_ref", "seq"),
        Index("ix_fhir_resources_updated", "resource_type", "last_updated_us", "seq"),
        Index("ix_fhir_resources_date", "resource_type", "date_low_us"),
        Index("ix_fhir_resources_status", "resource_type", "status"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated_us: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean)
    # "Patient/<id>" when the subject is a stored Patient, else "".
    patient_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    # The effective (or started) time as a half-open range [low, high) at its stated precision; None: no date.
    date_low_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    date_high_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    resource: Mapped[str] = mapped_column(Text)  # the current JSON as served; "" once deleted


class FhirTokenRow(Base):
    """A token a resource is searchable by: `param` is "code", "identifier" or "patient-identifier"."""

    __tablename__ = "fhir_resource_tokens"
    __table_args__ = (Index("ix_fhir_tokens_lookup", "param", "value", "system"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_seq: Mapped[int] = mapped_column(ForeignKey("fhir_resources.seq", ondelete="CASCADE"), index=True)
    param: Mapped[str] = mapped_column(String(32))
    system: Mapped[str] = mapped_column(String(256))
    value: Mapped[str] = mapped_column(String(256))
