"""The house rules a newcomer relies on: tests mirror the source, and a study's path reads forward only."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO_ROOT

SOURCE = REPO_ROOT / "services" / "hilum"
TESTS = REPO_ROOT / "tests" / "unit"
STAGES = ("ingestion", "inference", "priors", "reporting", "publishing")
# Generated protobuf code and Alembic revisions are not hand-written modules.
NOT_MIRRORED = ("v1", "migrations")


def _modules() -> list[Path]:
    return sorted(
        path for path in SOURCE.rglob("*.py")
        if path.name != "__init__.py" and not any(part in NOT_MIRRORED for part in path.relative_to(SOURCE).parts)
    )


def _imported_hilum_packages(path: Path) -> set[str]:
    """The hilum sub-packages a module imports, e.g. {"common", "ingestion"}."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "hilum" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_has_its_mirrored_test_module() -> None:
    missing = []
    for module in _modules():
        folder = TESTS / module.parent.relative_to(SOURCE)
        # Test file names are unique across the tree, so a package prefix is allowed: test_<pkg>_<module>.py.
        if not any(folder.glob(f"test_*{module.stem}.py")) and not (folder / f"test_{module.stem}.py").exists():
            missing.append(str(module.relative_to(SOURCE)))
    assert not missing, f"modules without a mirrored test module: {missing}"


def test_stages_reach_only_common_code_never_another_stage() -> None:
    crossings = []
    for stage in STAGES:
        for module in (SOURCE / stage).rglob("*.py"):
            others = _imported_hilum_packages(module) & (set(STAGES) - {stage})
            crossings += [f"{module.relative_to(SOURCE)} imports hilum.{other}" for other in sorted(others)]
    assert not crossings, crossings


def test_common_code_depends_on_no_stage() -> None:
    crossings = [
        f"{module.relative_to(SOURCE)} imports hilum.{package}"
        for module in (SOURCE / "common").rglob("*.py")
        for package in sorted(_imported_hilum_packages(module) & {*STAGES, "cds", "runtime", "samples"})
    ]
    assert not crossings, crossings
