"""Alembic migrations build exactly the schema the ORM models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from hilum.common.db.models import Base
from hilum.common.db.session import upgrade_database


def _schema_diff(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as connection:
        diff: list[object] = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    return diff


def test_sqlite_upgrade_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hilum.db'}"
    upgrade_database(url)
    upgrade_database(url)  # idempotent
    assert _schema_diff(url) == []
    assert {"studies", "instances", "findings", "reports", "rejections", "dead_letters"} <= set(
        inspect(create_engine(url)).get_table_names()
    )


@pytest.mark.integration
def test_postgres_upgrade_matches_models(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    assert _schema_diff(postgres_url) == []
