"""Alembic migrations build exactly the schema the ORM models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import OperationalError

from hilum.common.db.models import Base
from hilum.common.db.session import alembic_config, schema_is_current, upgrade_database


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


def test_sqlite_schema_is_current_only_at_the_latest_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hilum.db'}"
    assert not schema_is_current(url)  # empty: never migrated
    command.upgrade(alembic_config(url), "0004")
    assert not schema_is_current(url)  # behind
    upgrade_database(url)
    assert schema_is_current(url)


@pytest.mark.integration
def test_postgres_schema_is_current_after_upgrade(postgres_url: str) -> None:
    assert not schema_is_current(postgres_url)
    upgrade_database(postgres_url)
    assert schema_is_current(postgres_url)


def test_an_unreachable_database_raises(tmp_path: Path) -> None:
    with pytest.raises(OperationalError):
        schema_is_current(f"sqlite:///{tmp_path / 'no-such-folder' / 'hilum.db'}")
