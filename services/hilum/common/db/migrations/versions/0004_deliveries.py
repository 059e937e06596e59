"""Deliveries (one row per result and destination), the report's comparison, the study's placer order number.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("placer_order_number", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comparison", sa.LargeBinary(), nullable=True))
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "study_instance_uid", sa.String(64),
            sa.ForeignKey("studies.study_instance_uid", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("destination", sa.String(16), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("study_instance_uid", "model_version", "destination", "event", name="uq_delivery"),
    )
    op.create_index("ix_deliveries_study_instance_uid", "deliveries", ["study_instance_uid"])
    op.create_index("ix_deliveries_status", "deliveries", ["status"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_status", table_name="deliveries")
    op.drop_index("ix_deliveries_study_instance_uid", table_name="deliveries")
    op.drop_table("deliveries")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("comparison")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("placer_order_number")
