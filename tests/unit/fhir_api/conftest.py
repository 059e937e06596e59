"""FHIR read API fixtures: a migrated SQLite database per test (copied from one migrated once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db.session import create_db_engine, session_factory, upgrade_database


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the latest revision, to copy: migrating takes most of a second."""
    path = tmp_path_factory.mktemp("fhir-db") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def sessions(tmp_path: Path, migrated_database: Path) -> sessionmaker[Session]:
    """Sessions on a fresh, migrated SQLite database in tmp_path."""
    path = tmp_path / "hilum.db"
    shutil.copyfile(migrated_database, path)
    return session_factory(create_db_engine(f"sqlite:///{path}"))
