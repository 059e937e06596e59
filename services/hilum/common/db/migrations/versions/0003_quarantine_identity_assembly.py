"""Quarantine kept with each rejection, content hashes for identity checks, and the study assembly time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_sha256", sa.String(length=64), nullable=False, server_default=""))
        batch_op.create_index(batch_op.f("ix_instances_series_instance_uid"), ["series_instance_uid"], unique=False)
    with op.batch_alter_table("rejections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("object_key", sa.String(length=512), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("content_sha256", sa.String(length=64), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("door", sa.String(length=16), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="held"))
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_rejections_status"), ["status"], unique=False)
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_studies_ready_at"), ["ready_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_studies_ready_at"))
        batch_op.drop_column("ready_at")
    with op.batch_alter_table("rejections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejections_status"))
        for column in ("resolved_at", "status", "door", "content_sha256", "object_key"):
            batch_op.drop_column(column)
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_series_instance_uid"))
        batch_op.drop_column("content_sha256")
