"""ONNX export of the findings model: demo weights say so, published weights are versioned by file, and
ONNX Runtime computes what torch computes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

from hilum.inference.densenet import DenseNet121, demo_model
from hilum.inference.engine import engine_results, manifest_provenance
from hilum.inference.labels import load_label_map
from hilum.inference.model_export import (
    DEMO_VERSION,
    MANIFEST_FILE,
    WeightsManifest,
    ensure_findings_model,
    export_findings_model,
    file_sha256,
    findings_demo_source,
    read_op_threshs,
)
from hilum.v1 import messages_pb2
from tests.helpers import REPO_ROOT

NAN = float("nan")
# torchxrayvision's op_threshs layout: 18 thresholds in output order, NaN for an output the weights were not
# trained for (here infiltration, pleural thickening, lung lesion and enlarged cardiomediastinum).
OP_THRESHS = [0.07, 0.04, NAN, 0.01, 0.02, 0.002, 0.01, 0.1, 0.06, NAN, 0.05, 0.02, 0.02, 0.04, NAN, 0.04, 0.2, NAN]
UNTRAINED = [2, 9, 14, 17]


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


@pytest.fixture(scope="module")
def published_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WeightsManifest]:
    """A version folder exported from a state_dict in torchxrayvision's layout (seeded values) that carries an
    op_threshs buffer with NaN entries, and its manifest."""
    folder = tmp_path_factory.mktemp("published")
    torch.manual_seed(8)
    state = dict(DenseNet121().state_dict())
    state["op_threshs"] = torch.tensor(OP_THRESHS, dtype=torch.float32)
    weights = folder / "site-densenet121.pt"
    torch.save(state, weights)
    return folder / "1", export_findings_model(folder / "1", weights=weights)


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


def test_demo_manifest_publishes_no_thresholds(exported_repository: Path) -> None:
    version_dir = exported_repository / "cxr_findings" / "1"
    document = json.loads((version_dir / MANIFEST_FILE).read_text())
    assert "op_threshs" not in document and "untrained_outputs" not in document
    assert WeightsManifest.read(version_dir).op_threshs is None


def test_published_op_threshs_reach_weights_json(published_export: tuple[Path, WeightsManifest]) -> None:
    version_dir, manifest = published_export
    document = json.loads((version_dir / MANIFEST_FILE).read_text())
    assert len(document["op_threshs"]) == 18
    assert [index for index, t in enumerate(document["op_threshs"]) if t is None] == UNTRAINED  # NaN as null
    assert document["op_threshs"][0] == pytest.approx(0.07) and document["op_threshs"][16] == pytest.approx(0.2)
    assert document["untrained_outputs"] == UNTRAINED
    assert WeightsManifest.read(version_dir) == manifest
    assert manifest.untrained_outputs == tuple(UNTRAINED)


def test_the_engine_leaves_untrained_outputs_out_and_applies_the_published_thresholds(
    published_export: tuple[Path, WeightsManifest],
) -> None:
    """weights.json as exported, read the way the engine reads the served version's, on the model's own outputs."""
    version_dir, _ = published_export
    labels = load_label_map(REPO_ROOT / "model_repository" / "cxr_findings")
    session = onnxruntime.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"image": smooth_images(1, seed=9).numpy()})
    provenance = manifest_provenance(version_dir)

    (result,) = engine_results("cxr_findings", labels, 1, probabilities, np.array([provenance.version], np.object_),
                               np.array([provenance.demo]), provenance.op_threshs)

    trained = [label for label in labels if label.index not in UNTRAINED]
    assert [f.code for f in result.findings] == [label.code for label in trained]
    assert max(probabilities[0, UNTRAINED]) >= 0.5  # an untrained output that labels.json would have read as present
    assert {f.state for f in result.findings} == {messages_pb2.FINDING_STATE_PRESENT, messages_pb2.FINDING_STATE_ABSENT}
    for finding, label in zip(result.findings, trained, strict=True):
        published = OP_THRESHS[label.index]
        assert finding.threshold == pytest.approx(published)
        present = finding.probability >= finding.threshold
        assert (finding.state == messages_pb2.FINDING_STATE_PRESENT) == present


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"op_threshs": "0.5"}, "'op_threshs' must be a list"),
        ({"op_threshs": [0.5, 1.5]}, "'op_threshs' must be a list"),
        ({"op_threshs": [0.5, True]}, "'op_threshs' must be a list"),
        ({"op_threshs": [0.5, "NaN"]}, "'op_threshs' must be a list"),
        ({"op_threshs": [0.5, NAN]}, "'op_threshs' must be a list"),  # untrained is null, never NaN
        ({"op_threshs": [0.5, None], "untrained_outputs": [0]}, "'untrained_outputs' must list"),
    ],
)
def test_malformed_thresholds_make_the_manifest_unreadable(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    document = {"version": "v1", "demo": False, "source": "file", "sha256": "0", **changes}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        WeightsManifest.read(tmp_path)


def test_a_manifest_written_before_thresholds_were_recorded_still_reads(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"version": "v1", "demo": False, "source": "f", "sha256": "0"}))
    assert WeightsManifest.read(tmp_path) == WeightsManifest("v1", False, "f", "0", op_threshs=None)


# An operator's --op-threshs file: other thresholds than the buffer's, untrained where the buffer is trained.
OPERATOR_OP_THRESHS = [0.3, 0.3, 0.3, None, *[0.3] * 12, None, 0.25]


def test_the_operators_thresholds_win_over_the_files_buffer(
    published_export: tuple[Path, WeightsManifest], tmp_path: Path
) -> None:
    weights = published_export[0].parent / "site-densenet121.pt"  # carries OP_THRESHS as its op_threshs buffer
    thresholds = tmp_path / "op_threshs.json"
    thresholds.write_text(json.dumps(OPERATOR_OP_THRESHS))

    manifest = export_findings_model(tmp_path / "1", weights=weights, op_threshs=read_op_threshs(thresholds))

    document = json.loads((tmp_path / "1" / MANIFEST_FILE).read_text())
    assert document["op_threshs"] == OPERATOR_OP_THRESHS
    assert document["untrained_outputs"] == [3, 16]
    assert WeightsManifest.read(tmp_path / "1") == manifest
    assert manifest.version == published_export[1].version  # the same weights, only the thresholds differ


def test_demo_weights_take_no_operator_thresholds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not for demo weights"):
        export_findings_model(tmp_path / "1", op_threshs=(0.5,) * 18)
    assert not (tmp_path / "1").exists()


@pytest.mark.parametrize(
    "content",
    ['[0.5, 0.5', json.dumps([0.5] * 17), json.dumps([*[0.5] * 17, 1.5]), json.dumps([*[0.5] * 17, "0.5"]),
     json.dumps([None] * 18), json.dumps({"op_threshs": [0.5] * 18}), "null"],
    ids=["not-json", "17", "above-1", "a-string", "all-null", "an-object", "null"],
)
def test_a_malformed_operator_thresholds_file_is_refused_by_name(tmp_path: Path, content: str) -> None:
    thresholds = tmp_path / "site-thresholds.json"
    thresholds.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(thresholds))):
        read_op_threshs(thresholds)


def test_a_missing_operator_thresholds_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "absent.json"))):
        read_op_threshs(tmp_path / "absent.json")
