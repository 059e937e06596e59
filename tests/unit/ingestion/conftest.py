"""Fixtures of the acceptance rule tests: the small samples on disk, and edits of the first one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.common.dicom.sample_bytes import edited_bytes, write_small_samples
from tests.unit.ingestion.acceptance_checks import Edit


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_small_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def edited(sample_files: list[Path]) -> Edit:
    """Part 10 bytes of the first sample after an edit to its dataset."""
    return lambda change: edited_bytes(sample_files[0], lambda ds: change(ds))
