"""ONNX export of the devices model: demo weights say so, hospital weights are versioned by file and checked,
and ONNX Runtime computes what torch computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from hilum.inference.devices_export import DEVICES_MODEL_NAME, ensure_devices_model, export_devices_model
from hilum.inference.landmark_net import LandmarkNet, LandmarkWeightsError, demo_model
from hilum.inference.model_export import DEMO_VERSION, WeightsManifest, file_sha256


def smooth_images(count: int, seed: int) -> torch.Tensor:
    """Radiograph-like test inputs: float32 (count, 1, 512, 512), smooth, values in [-1024, 1024]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 6, 6, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=512, mode="bilinear") * 2048.0 - 1024.0


def session_of(model_file: Path) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session over an exported model file."""
    return onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository in which ensure_devices_model exported the demo model (once per module)."""
    repository = tmp_path_factory.mktemp("repository")
    ensure_devices_model(repository)
    return repository


def test_demo_export_runs_in_onnxruntime_like_torch(exported_repository: Path) -> None:
    session = session_of(exported_repository / DEVICES_MODEL_NAME / "1" / "model.onnx")
    assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [("image", [1, 512, 512])]
    assert [(o.name, o.shape[1:]) for o in session.get_outputs()] == [("heatmaps", [9, 128, 128])]
    images = smooth_images(2, seed=4)
    with torch.no_grad():
        expected = demo_model(seed=0)(images).numpy()
    for batch in (images[:1], images):  # the batch axis is dynamic
        (actual,) = session.run(None, {"image": batch.numpy()})
        assert actual.dtype == np.float32
        np.testing.assert_allclose(actual, expected[: len(batch)], atol=1e-4)


def test_demo_manifest_says_demo(exported_repository: Path) -> None:
    version_dir = exported_repository / DEVICES_MODEL_NAME / "1"
    manifest = WeightsManifest.read(version_dir)
    assert manifest.version == DEMO_VERSION == "demo-untrained"
    assert manifest.demo is True
    assert "NOT for clinical use" in manifest.source
    assert manifest.sha256 == file_sha256(version_dir / "model.onnx")
    assert sorted(path.name for path in version_dir.iterdir()) == ["model.onnx", "weights.json"]


def test_ensure_keeps_a_provisioned_model(exported_repository: Path) -> None:
    model_file = exported_repository / DEVICES_MODEL_NAME / "1" / "model.onnx"
    modified = model_file.stat().st_mtime_ns
    assert ensure_devices_model(exported_repository) == WeightsManifest.read(model_file.parent)
    assert model_file.stat().st_mtime_ns == modified


def test_export_of_hospital_weights_is_versioned_by_file(tmp_path: Path) -> None:
    source = demo_model(seed=5)
    weights = tmp_path / "landmarks-site-a.pt"
    torch.save(source.state_dict(), weights)
    manifest = export_devices_model(tmp_path / "1", weights=weights)
    assert manifest.demo is False
    assert manifest.version == f"landmarks-site-a-{file_sha256(weights)[:12]}"
    assert manifest.source == f"landmarks-site-a.pt (sha256 {file_sha256(weights)})"
    assert WeightsManifest.read(tmp_path / "1") == manifest
    images = smooth_images(1, seed=6)
    with torch.no_grad():
        expected = source(images).numpy()
    (actual,) = session_of(tmp_path / "1" / "model.onnx").run(None, {"image": images.numpy()})
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_export_of_wrong_weights_leaves_the_provisioned_model(exported_repository: Path, tmp_path: Path) -> None:
    version_dir = exported_repository / DEVICES_MODEL_NAME / "1"
    before = WeightsManifest.read(version_dir)
    state = LandmarkNet().state_dict()
    del state["head.bias"]
    weights = tmp_path / "incomplete.pt"
    torch.save(state, weights)
    with pytest.raises(LandmarkWeightsError, match="missing keys"):
        export_devices_model(version_dir, weights=weights)
    assert WeightsManifest.read(version_dir) == before
    assert file_sha256(version_dir / "model.onnx") == before.sha256
