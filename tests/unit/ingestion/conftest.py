"""Fixtures of the ingestion tests: an Ingestion over a migrated SQLite store, the small samples on disk and
edits of the first one (for the acceptance rule tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.object_store import ObjectStore
from hilum.ingestion.service import Ingestion
from tests.helpers import MRN_SYSTEM
from tests.unit.common.dicom.sample_bytes import edited_bytes, write_small_samples
from tests.unit.ingestion.acceptance_checks import Edit


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_small_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def edited(sample_files: list[Path]) -> Edit:
    """Part 10 bytes of the first sample after an edit to its dataset."""
    return lambda change: edited_bytes(sample_files[0], lambda ds: change(ds))


@pytest.fixture
def ingestion(sqlite_sessions: sessionmaker[Session], store: ObjectStore) -> Ingestion:
    """Ingestion with the default acceptance rules and no stability window."""
    return Ingestion(sqlite_sessions, store, MRN_SYSTEM)
