"""Fixtures for the runtime tests: stack settings on free loopback ports over a model repository that
already holds (fake) weights, so that preparing a stack exports nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hilum.common.settings import HilumSettings
from hilum.runtime.ports import loopback_settings


@pytest.fixture
def provisioned_repository(tmp_path: Path) -> Callable[[bool], Path]:
    """Makes a model repository whose cxr_findings/1 and cxr_devices/1 hold a model file and a manifest (demo weights
    or not)."""

    def make(demo: bool) -> Path:
        root = tmp_path / ("demo-models" if demo else "models")
        for model in ("cxr_findings", "cxr_devices"):
            version_dir = root / model / "1"
            version_dir.mkdir(parents=True)
            (version_dir / "model.onnx").write_bytes(b"never loaded by these tests")
            (version_dir / "weights.json").write_text(json.dumps(
                {"version": "demo-untrained" if demo else "published-1", "demo": demo, "source": "test", "sha256": "0"}
            ))
        return root

    return make


@pytest.fixture
def settings(tmp_path: Path, provisioned_repository: Callable[[bool], Path]) -> HilumSettings:
    """A stack's settings on free loopback ports, data and output under tmp_path, demo weights in place."""
    return loopback_settings(tmp_path, provisioned_repository(True), tmp_path / "venv")
