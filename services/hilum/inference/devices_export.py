"""Builds the cxr_devices ONNX model (demo or operator-supplied weights) and its weights.json manifest.

The manifest is model_export's WeightsManifest, so both models record their weights alike; Triton serves only the
heatmaps and the inference service reads the version and demo flag from weights.json of the served version. torch
is imported only when a model is exported, so reading a manifest (ensure_devices_model on a provisioned repository)
does not need it.
"""

from __future__ import annotations

from pathlib import Path

from hilum.common.wording import demo_weights_source
from hilum.inference.model_export import MANIFEST_FILE, MODEL_FILE, WeightsManifest, export_onnx

DEVICES_MODEL_NAME = "cxr_devices"
HEATMAPS = "heatmaps"


def export_devices_model(version_dir: Path, weights: Path | None = None, seed: int = 0) -> WeightsManifest:
    """Writes model.onnx (input "image" float32 (N, 1, 512, 512), output "heatmaps" float32 (N, K, 128, 128)) and
    weights.json into version_dir. weights=None gives seeded demo weights ("demo-untrained") that find nothing;
    otherwise weights names a LandmarkNet state_dict file (LandmarkWeightsError when it is not one).
    """
    from hilum.inference import landmark_net

    model = landmark_net.demo_model(seed) if weights is None else landmark_net.published_landmark_model(weights)
    return export_onnx(model, version_dir, landmark_net.INPUT_SIZE, HEATMAPS, weights, demo_weights_source(seed))


def ensure_devices_model(model_repository: Path) -> WeightsManifest:
    """Returns the manifest of cxr_devices/1, first exporting demo weights there if none are present."""
    version_dir = model_repository / DEVICES_MODEL_NAME / "1"
    if (version_dir / MODEL_FILE).is_file() and (version_dir / MANIFEST_FILE).is_file():
        return WeightsManifest.read(version_dir)
    return export_devices_model(version_dir)
