"""Builds the cxr_findings ONNX model (demo or published weights) and its weights.json manifest.

The manifest tells Triton's model.py, and through it every result, which weights are running and
whether they are demo weights; for published weights it also holds their operating threshold per
output (the file's own, or the operator's), which the inference engine scores with (an output without
one is never reported). torch is imported only when a model is exported, so reading a manifest
(ensure_findings_model on a provisioned repository) does not need it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hilum.common.wording import demo_weights_source
from hilum.inference.labels import NUM_LABELS, OperatingThresholds

FINDINGS_MODEL_NAME = "cxr_findings"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "weights.json"
INPUT_NAME = "image"  # every model's input tensor
DEMO_VERSION = "demo-untrained"
ONNX_OPSET = 17


@dataclass(frozen=True)
class WeightsManifest:
    """What weights.json records: version reported with every result, demo flag, origin, ONNX sha256, and the
    operating threshold per output published with the weights (None: none published, labels.json decides)."""

    version: str
    demo: bool
    source: str
    sha256: str
    op_threshs: OperatingThresholds | None = None

    @property
    def untrained_outputs(self) -> tuple[int, ...]:
        """The output indices these weights were not trained for (no published threshold): never reported."""
        return tuple(index for index, threshold in enumerate(self.op_threshs or ()) if threshold is None)

    def write(self, version_dir: Path) -> None:
        """Writes weights.json into version_dir (next to model.onnx); op_threshs (null for an untrained output) and
        untrained_outputs only where thresholds were published."""
        document: dict[str, Any] = asdict(self)
        if self.op_threshs is None:
            del document["op_threshs"]
        else:
            document["untrained_outputs"] = list(self.untrained_outputs)
        (version_dir / MANIFEST_FILE).write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def read(cls, version_dir: Path) -> WeightsManifest:
        """Reads and checks weights.json from version_dir; raises ValueError when it is malformed."""
        path = version_dir / MANIFEST_FILE
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a JSON object")
        version, demo, source, sha256 = (raw.get(k) for k in ("version", "demo", "source", "sha256"))
        if not (isinstance(version, str) and version and isinstance(demo, bool)):
            raise ValueError(f"{path}: needs a non-empty 'version' and a boolean 'demo'")
        if not (isinstance(source, str) and isinstance(sha256, str)):
            raise ValueError(f"{path}: 'source' and 'sha256' must be strings")
        manifest = cls(version=version, demo=demo, source=source, sha256=sha256,
                       op_threshs=_op_threshs(path, raw.get("op_threshs")))
        untrained = raw.get("untrained_outputs")
        if untrained is not None and untrained != list(manifest.untrained_outputs):
            raise ValueError(f"{path}: 'untrained_outputs' must list the outputs whose 'op_threshs' entry is null")
        return manifest


def _op_threshs(path: Path, value: Any) -> OperatingThresholds | None:
    """An op_threshs value (weights.json's, or an operator's file): None when absent, else a list of probabilities in
    [0, 1] or null (ValueError naming path)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        entry is None or (isinstance(entry, int | float) and not isinstance(entry, bool) and 0.0 <= entry <= 1.0)
        for entry in value
    ):
        raise ValueError(f"{path}: 'op_threshs' must be a list of probabilities in [0, 1] or null")
    return tuple(None if entry is None else float(entry) for entry in value)


def read_op_threshs(path: Path) -> OperatingThresholds:
    """An operator's operating thresholds file (`--op-threshs`): JSON, a list of NUM_LABELS probabilities in [0, 1]
    or null (an output the weights were not trained for), in output order. Raises ValueError naming path."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from exc
    op_threshs = _op_threshs(path, value)
    if op_threshs is None or len(op_threshs) != NUM_LABELS or all(entry is None for entry in op_threshs):
        raise ValueError(f"{path}: must be a list of {NUM_LABELS} probabilities in [0, 1] or null, not all null")
    return op_threshs


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_findings_model(
    version_dir: Path, weights: Path | None = None, seed: int = 0, op_threshs: OperatingThresholds | None = None
) -> WeightsManifest:
    """Writes model.onnx (input "image" float32 (N, 1, 224, 224), output "probabilities" float32 (N, 18))
    and weights.json into version_dir. weights=None gives seeded random demo weights ("demo-untrained"), with no
    operating thresholds; for a weights file, weights.json gets the operator's op_threshs (read_op_threshs) where
    given, else the file's own (densenet.published_model).
    """
    from hilum.inference import densenet

    if weights is None:
        if op_threshs is not None:
            raise ValueError("operating thresholds are for a weights file, not for demo weights")
        return export_onnx(densenet.demo_model(seed), version_dir, densenet.INPUT_SIZE, "probabilities", None,
                           findings_demo_source(seed))
    published = densenet.published_model(weights)
    return export_onnx(published.model, version_dir, densenet.INPUT_SIZE, "probabilities", weights, "",
                       published.op_threshs if op_threshs is None else op_threshs)


def export_onnx(
    model: Any,
    version_dir: Path,
    input_size: int,
    output_name: str,
    weights: Path | None,
    demo_source: str,
    op_threshs: OperatingThresholds | None = None,
) -> WeightsManifest:
    """Writes model (a torch module in eval mode) as version_dir/model.onnx, input "image" float32
    (N, 1, input_size, input_size) and output output_name with a dynamic batch axis, then its weights.json: demo
    weights (weights None, source demo_source) or those of the file weights, versioned by its name and sha256, with
    the operating thresholds published with them (op_threshs; None: none).
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
        version=version, demo=weights is None, source=source, sha256=file_sha256(version_dir / MODEL_FILE),
        op_threshs=op_threshs,
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
