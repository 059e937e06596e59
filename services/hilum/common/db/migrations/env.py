"""Alembic environment: runs Hilum's migrations online against the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import hilum.fhir_api.tables  # noqa: F401  (registers the FHIR read API's tables on Base)
from hilum.common.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Apply migrations on one connection; SQLite needs batch mode for ALTERs."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("the Alembic configuration has no sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
