"""Migration 0005 builds exactly the FHIR store tables the ORM describes."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from hilum.common.db.models import Base
from hilum.common.db.session import upgrade_database
from hilum.fhir_api.tables import FhirResourceRow, FhirResourceVersionRow, FhirTokenRow

FHIR_TABLES = {FhirResourceRow.__tablename__, FhirResourceVersionRow.__tablename__, FhirTokenRow.__tablename__}


def _mentions_fhir_table(change: object) -> bool:
    text = repr(change)
    return any(name in text for name in FHIR_TABLES)


def test_sqlite_migration_matches_the_fhir_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hilum.db'}"
    upgrade_database(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert [change for change in diff if _mentions_fhir_table(change)] == []
