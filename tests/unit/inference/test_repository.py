"""Reading what the model repository serves."""

from __future__ import annotations

from pathlib import Path

from hilum.inference.model_export import WeightsManifest
from hilum.inference.repository import served_version


def test_the_served_version_is_the_repositorys_newest_manifest(tmp_path: Path) -> None:
    assert served_version(tmp_path, "cxr_findings") is None
    for folder, version in (("1", "densenet-aaa"), ("3", "densenet-ccc"), ("20", "densenet-bbb")):
        (tmp_path / "cxr_findings" / folder).mkdir(parents=True)
        WeightsManifest(version=version, demo=False, source="test", sha256="0" * 64).write(
            tmp_path / "cxr_findings" / folder)
    assert served_version(tmp_path, "cxr_findings") == "densenet-bbb"
    (tmp_path / "cxr_findings" / "30").mkdir()
    (tmp_path / "cxr_findings" / "30" / "weights.json").write_text("{")  # unreadable: not what is served
    assert served_version(tmp_path, "cxr_findings") is None
