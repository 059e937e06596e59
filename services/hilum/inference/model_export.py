"""Builds the cxr_findings ONNX model (demo or published weights) and its weights.json manifest.

The manifest tells Triton's model.py, and through it every result, which weights are running and
whether they are demo weights. torch is imported only when a model is exported, so reading a
manifest (ensure_findings_model on a provisioned repository) does not need it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hilum.common.wording import demo_weights_source

FINDINGS_MODEL_NAME = "cxr_findings"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "weights.json"
INPUT_NAME = "image"  # every model's input tensor
DEMO_VERSION = "demo-untrained"
ONNX_OPSET = 17


@dataclass(frozen=True)
class WeightsManifest:
    """What weights.json records: version reported with every result, demo flag, origin, ONNX sha256."""

    version: str
    demo: bool
    source: str
    sha256: str

    def write(self, version_dir: Path) -> None:
        """Writes weights.json into version_dir (next to model.onnx)."""
        (version_dir / MANIFEST_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, version_dir: Path) -> WeightsManifest:
        """Reads and checks weights.json from version_dir; raises ValueError when it is malformed."""
        raw = json.loads((version_dir / MANIFEST_FILE).read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{version_dir / MANIFEST_FILE}: expected a JSON object")
        version, demo, source, sha256 = (raw.get(k) for k in ("version", "demo", "source", "sha256"))
        if not (isinstance(version, str) and version and isinstance(demo, bool)):
            raise ValueError(
                f"{version_dir / MANIFEST_FILE}: needs a non-empty 'version' and a boolean 'demo'"
            )
        if not (isinstance(source, str) and isinstance(sha256, str)):
            raise ValueError(f"{version_dir / MANIFEST_FILE}: 'source' and 'sha256' must be strings")
        return cls(version=version, demo=demo, source=source, sha256=sha256)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_findings_model(version_dir: Path, weights: Path | None = None, seed: int = 0) -> WeightsManifest:
    """Writes model.onnx (input "image" float32 (N, 1, 224, 224), output "probabilities" float32 (N, 18))
    and weights.json into version_dir. weights=None gives seeded random demo weights ("demo-untrained").
    """
    from hilum.inference import densenet

    model = densenet.demo_model(seed) if weights is None else densenet.published_model(weights)
    return export_onnx(model, version_dir, densenet.INPUT_SIZE, "probabilities", weights, findings_demo_source(seed))


def export_onnx(
    model: Any, version_dir: Path, input_size: int, output_name: str, weights: Path | None, demo_source: str
) -> WeightsManifest:
    """Writes model (a torch module in eval mode) as version_dir/model.onnx, input "image" float32
    (N, 1, input_size, input_size) and output output_name with a dynamic batch axis, then its weights.json: demo
    weights (weights None, source demo_source) or those of the file weights, versioned by its name and sha256.
    """
    import torch

    version_dir.mkdir(parents=True, exist_ok=True)
    partial = version_dir / (MODEL_FILE + ".partial")
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, input_size, input_size),),
        str(partial),
        dynamo=False,  # the TorchScript exporter needs no onnxscript and exports in seconds
        input_names=[INPUT_NAME],
        output_names=[output_name],
        dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}},
        opset_version=ONNX_OPSET,
    )
    if weights is None:
        version, source = DEMO_VERSION, demo_source
    else:
        weights_sha256 = file_sha256(weights)
        version, source = f"{weights.stem}-{weights_sha256[:12]}", f"{weights.name} (sha256 {weights_sha256})"
    # Drop the old manifest first: a model.onnx must never sit next to another model's version.
    (version_dir / MANIFEST_FILE).unlink(missing_ok=True)
    partial.replace(version_dir / MODEL_FILE)
    manifest = WeightsManifest(
        version=version, demo=weights is None, source=source, sha256=file_sha256(version_dir / MODEL_FILE)
    )
    manifest.write(version_dir)
    return manifest


def findings_demo_source(seed: int) -> str:
    """The manifest's source line of this release's demo weights for cxr_findings (it names the recipe, so that
    demo weights made by an earlier one are recognised)."""
    return f"{demo_weights_source(seed)}; head calibrated to score no finding"


def ensure_findings_model(model_repository: Path) -> WeightsManifest:
    """Returns the manifest of cxr_findings/1, first exporting demo weights there if none are present, or if the
    demo weights there were made by an earlier recipe (provisioned weights are never replaced)."""
    version_dir = model_repository / FINDINGS_MODEL_NAME / "1"
    if (version_dir / MODEL_FILE).is_file() and (version_dir / MANIFEST_FILE).is_file():
        manifest = WeightsManifest.read(version_dir)
        if not manifest.demo or manifest.source == findings_demo_source(0):
            return manifest
    return export_findings_model(version_dir)
