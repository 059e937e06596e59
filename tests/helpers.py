"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

REPO_ROOT = Path(__file__).resolve().parent.parent


def new_database(server_url: str) -> str:
    """Create an empty database on the PostgreSQL server at server_url; returns its SQLAlchemy URL."""
    name = f"hilum_{uuid.uuid4().hex[:12]}"
    engine = create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server_url}/{name}"
