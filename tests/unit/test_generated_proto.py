"""The committed protobuf code under services/hilum/v1 must be exactly what proto/ generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "generate_proto.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    generated = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "hilum" / "v1").iterdir()}
    committed_dir = REPO / "services" / "hilum" / "v1"
    committed = {p.relative_to(REPO / "services"): p.read_bytes() for p in committed_dir.iterdir()
                 if p.name.endswith((".py", ".pyi")) and p.name != "__init__.py"}
    assert generated, "protoc generated nothing"
    stale = sorted(str(k) for k in generated.keys() | committed.keys() if generated.get(k) != committed.get(k))
    assert not stale, f"stale generated code (run scripts/generate_proto.py): {stale}"
