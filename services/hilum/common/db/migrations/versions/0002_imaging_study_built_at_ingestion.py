"""Imaging study built at ingestion (existing rows get an empty one until their next instance).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:48:23.592335
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imaging_study", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("imaging_study")
