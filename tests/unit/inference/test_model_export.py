"""ONNX export of the findings model: demo weights say so, published weights are versioned by file, and
ONNX Runtime computes what torch computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from hilum.inference.densenet import demo_model
from hilum.inference.model_export import (
    DEMO_VERSION,
    WeightsManifest,
    ensure_findings_model,
    export_findings_model,
    file_sha256,
    findings_demo_source,
)


def smooth_images(count: int, seed: int) -> torch.Tensor:
    """Radiograph-like test inputs: float32 (count, 1, 224, 224), smooth, values in [-1024, 1024]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 6, 6, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=224, mode="bilinear") * 2048.0 - 1024.0


@pytest.fixture(scope="module")
def exported_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository in which ensure_findings_model exported the demo model (once per module)."""
    repository = tmp_path_factory.mktemp("repository")
    ensure_findings_model(repository)
    return repository



def test_demo_export_runs_in_onnxruntime_like_torch(exported_repository: Path) -> None:
    version_dir = exported_repository / "cxr_findings" / "1"
    session = onnxruntime.InferenceSession(
        str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [("image", [1, 224, 224])]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    images = smooth_images(3, seed=4)
    with torch.no_grad():
        expected = demo_model(seed=0)(images).numpy()
    for batch in (images[:1], images):  # the batch axis is dynamic
        (actual,) = session.run(None, {"image": batch.numpy()})
        assert actual.dtype == np.float32
        np.testing.assert_allclose(actual, expected[: len(batch)], atol=1e-4)


def test_demo_manifest_says_demo(exported_repository: Path) -> None:
    version_dir = exported_repository / "cxr_findings" / "1"
    manifest = WeightsManifest.read(version_dir)
    assert manifest.version == DEMO_VERSION == "demo-untrained"
    assert manifest.demo is True
    assert "NOT for clinical use" in manifest.source
    assert manifest.sha256 == file_sha256(version_dir / "model.onnx")


def test_ensure_keeps_a_provisioned_model(exported_repository: Path) -> None:
    model_file = exported_repository / "cxr_findings" / "1" / "model.onnx"
    modified = model_file.stat().st_mtime_ns
    assert ensure_findings_model(exported_repository) == WeightsManifest.read(model_file.parent)
    assert model_file.stat().st_mtime_ns == modified


def test_ensure_makes_demo_weights_of_an_earlier_recipe_again_but_never_touches_provisioned_ones(
    tmp_path: Path,
) -> None:
    """An older release's demo weights (scores about 0.5: eleven "suspected" findings per study) would keep crying
    wolf in a checkout that was updated: they are exported again. Provisioned weights stay whatever they say."""
    version_dir = tmp_path / "cxr_findings" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "model.onnx").write_bytes(b"an earlier demo export")
    WeightsManifest(DEMO_VERSION, True, "seeded random initialisation (torch.manual_seed(0)); NOT trained", "0").write(
        version_dir)
    remade = ensure_findings_model(tmp_path)
    assert remade.source == findings_demo_source(0) and remade.sha256 == file_sha256(version_dir / "model.onnx")
    provisioned = WeightsManifest("published-1", False, "a hospital's file", "0")
    provisioned.write(version_dir)
    assert ensure_findings_model(tmp_path) == provisioned


def test_export_of_published_weights_is_versioned_by_file(tmp_path: Path) -> None:
    source = demo_model(seed=5)
    weights = tmp_path / "densenet121-res224-all.pt"
    torch.save(source.state_dict(), weights)
    manifest = export_findings_model(tmp_path / "1", weights=weights)
    assert manifest.demo is False
    assert manifest.version == f"densenet121-res224-all-{file_sha256(weights)[:12]}"
    assert WeightsManifest.read(tmp_path / "1") == manifest
    session = onnxruntime.InferenceSession(
        str(tmp_path / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    images = smooth_images(2, seed=6)
    with torch.no_grad():
        expected = source(images).numpy()
    np.testing.assert_allclose(session.run(None, {"image": images.numpy()})[0], expected, atol=1e-4)
