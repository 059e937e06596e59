"""Session fixtures for integration tests: a real Triton server with demo weights on free loopback ports.

`triton_server` yields the TritonSection that reaches it; other integration tests reuse it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hilum.common.db.session import upgrade_database
from hilum.common.settings import TritonSection
from hilum.inference.devices_export import ensure_devices_model
from hilum.inference.model_export import ensure_findings_model
from hilum.runtime.ports import loopback_settings, loopback_triton
from hilum.runtime.stack import EmbeddedStack
from hilum.runtime.triton import TritonServer
from tests.helpers import REPO_ROOT

# Exported weights of a developer's checkout must not leak into the tests: they export demo weights.
GENERATED_FILES = ("*.onnx", "*.onnx.partial", "weights.json", "__pycache__")


def server_venv() -> Path:
    """The nvidia-pytriton environment of this checkout (HILUM_TRITON__SERVER_VENV is not consulted)."""
    venv = TritonSection().server_venv
    return venv if venv.is_absolute() else REPO_ROOT / venv


def copy_model_repository(destination: Path, models: tuple[str, ...] = ("cxr_findings",)) -> Path:
    """A model repository at destination holding copies of the named models without exported weights.

    Triton exits when any model fails to load, so only models whose weights a fixture exports belong here.
    """
    for model in models:
        shutil.copytree(
            REPO_ROOT / "model_repository" / model,
            destination / model,
            ignore=shutil.ignore_patterns(*GENERATED_FILES),
        )
    return destination


def loopback_section(model_repository: Path) -> TritonSection:
    """Triton settings on free loopback ports over model_repository, with this checkout's server venv."""
    return loopback_triton(model_repository, server_venv())


@pytest.fixture
def triton_section_for() -> Callable[[Path], TritonSection]:
    """Factory of Triton settings on free loopback ports (nothing started) for a given model repository."""
    return loopback_section


@pytest.fixture
def unprovisioned_model_repository(tmp_path: Path) -> Path:
    """A model repository holding cxr_findings without any exported weights."""
    return copy_model_repository(tmp_path / "unprovisioned_repository")


@pytest.fixture(scope="session")
def demo_model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary model repository with the demo (seeded, untrained) findings and devices models exported into it."""
    repository = copy_model_repository(
        tmp_path_factory.mktemp("triton") / "model_repository", ("cxr_findings", "cxr_devices")
    )
    ensure_findings_model(repository)
    ensure_devices_model(repository)
    return repository


@pytest.fixture(scope="session")
def triton_server(
    tmp_path_factory: pytest.TempPathFactory, demo_model_repository: Path
) -> Iterator[TritonSection]:
    """A running tritonserver over demo_model_repository; yields the settings with its actual ports."""
    section = loopback_section(demo_model_repository)
    work_dir = tmp_path_factory.mktemp("triton-work")
    with TritonServer(section, work_dir=work_dir, log_file=work_dir / "tritonserver.log"):
        yield section


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_model_repository: Path) -> Iterator[EmbeddedStack]:
    """The embedded stack on free loopback ports over SQLite, with the demo-weights model repository: one per
    test module (test_pipeline.py runs its own, over PostgreSQL).
    """
    settings = loopback_settings(tmp_path_factory.mktemp("stack"), demo_model_repository, server_venv())
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as running:
        yield running
