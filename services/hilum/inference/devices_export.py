"""Builds the cxr_devices ONNX model (demo or operator-supplied weights) and its weights.json manifest.

The manifest is model_export's WeightsManifest, so both models record their weights alike; Triton serves only the
heatmaps and the inference service reads the version and demo flag from weights.json of the served version. torch
is imported only when a model is exported, so reading a manifest (ensure_devices_model on a provisioned repository)
does not need it.
"""

from __future__ import annotations

from pathlib import Path

from hilum.common.wording import demo_weights_source
from hilum.inference.model_export import (
    DEMO_VERSION,
    MANIFEST_FILE,
    MODEL_FILE,
    ONNX_OPSET,
    WeightsManifest,
    file_sha256,
)

DEVICES_MODEL_NAME = "cxr_devices"
INPUT_NAME = "image"
HEATMAPS = "heatmaps"


def export_devices_model(version_dir: Path, weights: Path | None = None, seed: int = 0) -> WeightsManifest:
    """Writes model.onnx (input "image" float32 (N, 1, 512, 512), output "heatmaps" float32 (N, K, 128, 128)) and
    weights.json into version_dir. weights=None gives seeded demo weights ("demo-untrained") that find nothing;
    otherwise weights names a LandmarkNet state_dict file (LandmarkWeightsError when it is not one).
    """
    import torch

    from hilum.inference import landmark_net

    if weights is None:
        model = landmark_net.demo_model(seed)
        version = DEMO_VERSION
        source = demo_weights_source(seed)
    else:
        weights_sha256 = file_sha256(weights)
        model = landmark_net.published_landmark_model(weights)
        version = f"{weights.stem}-{weights_sha256[:12]}"
        source = f"{weights.name} (sha256 {weights_sha256})"

    version_dir.mkdir(parents=True, exist_ok=True)
    partial = version_dir / (MODEL_FILE + ".partial")
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, landmark_net.INPUT_SIZE, landmark_net.INPUT_SIZE),),
        str(partial),
        dynamo=False,  # the TorchScript exporter needs no onnxscript
        input_names=[INPUT_NAME],
        output_names=[HEATMAPS],
        dynamic_axes={INPUT_NAME: {0: "batch"}, HEATMAPS: {0: "batch"}},
        opset_version=ONNX_OPSET,
    )
    # Drop the old manifest first: a model.onnx must never sit next to another model's version.
    (version_dir / MANIFEST_FILE).unlink(missing_ok=True)
    partial.replace(version_dir / MODEL_FILE)
    manifest = WeightsManifest(
        version=version, demo=weights is None, source=source, sha256=file_sha256(version_dir / MODEL_FILE)
    )
    manifest.write(version_dir)
    return manifest


def ensure_devices_model(model_repository: Path) -> WeightsManifest:
    """Returns the manifest of cxr_devices/1, first exporting demo weights there if none are present."""
    version_dir = model_repository / DEVICES_MODEL_NAME / "1"
    if (version_dir / MODEL_FILE).is_file() and (version_dir / MANIFEST_FILE).is_file():
        return WeightsManifest.read(version_dir)
    return export_devices_model(version_dir)
