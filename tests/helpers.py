"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from hilum.runtime.ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["REPO_ROOT", "free_port"]
