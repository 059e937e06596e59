"""The FHIR read API's resource store: every version, the current one with search columns, and search tokens.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fhir_resource_versions",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer(), primary_key=True),
        sa.Column("last_updated_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
    )
    op.create_table(
        "fhir_resources",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("patient_ref", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("date_low_us", sa.BigInteger(), nullable=True),
        sa.Column("date_high_us", sa.BigInteger(), nullable=True),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.UniqueConstraint("resource_type", "resource_id", name="uq_fhir_resource"),
    )
    op.create_index("ix_fhir_resources_type_seq", "fhir_resources", ["resource_type", "seq"])
    op.create_index("ix_fhir_resources_patient", "fhir_resources", ["resource_type", "patient_ref", "seq"])
    op.create_index("ix_fhir_resources_updated", "fhir_resources", ["resource_type", "last_updated_us", "seq"])
    op.create_index("ix_fhir_resources_date", "fhir_resources", ["resource_type", "date_low_us"])
    op.create_index("ix_fhir_resources_status", "fhir_resources", ["resource_type", "status"])
    op.create_table(
        "fhir_resource_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("resource_seq", sa.Integer(), sa.ForeignKey("fhir_resources.seq", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("param", sa.String(32), nullable=False),
        sa.Column("system", sa.String(256), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_index("ix_fhir_tokens_lookup", "fhir_resource_tokens", ["param", "value", "system"])
    op.create_index("ix_fhir_resource_tokens_resource_seq", "fhir_resource_tokens", ["resource_seq"])


def downgrade() -> None:
    op.drop_index("ix_fhir_resource_tokens_resource_seq", table_name="fhir_resource_tokens")
    op.drop_index("ix_fhir_tokens_lookup", table_name="fhir_resource_tokens")
    op.drop_table("fhir_resource_tokens")
    op.drop_index("ix_fhir_resources_status", table_name="fhir_resources")
    op.drop_index("ix_fhir_resources_date", table_name="fhir_resources")
    op.drop_index("ix_fhir_resources_updated", table_name="fhir_resources")
    op.drop_index("ix_fhir_resources_patient", table_name="fhir_resources")
    op.drop_index("ix_fhir_resources_type_seq", table_name="fhir_resources")
    op.drop_table("fhir_resources")
    op.drop_table("fhir_resource_versions")
