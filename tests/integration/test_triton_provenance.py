"""Provenance when the served config has no model_version/demo_weights outputs (the stock-image onnxruntime
configs): FindingsEngine against a real tritonserver serving a test model that emits only probabilities.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hilum.common.settings import TritonSection
from hilum.inference.engine import UNKNOWN_VERSION, FindingsEngine
from hilum.inference.labels import LABELS_FILE, findings_label_set, load_label_map
from hilum.inference.model_export import MANIFEST_FILE, WeightsManifest
from hilum.runtime.triton import TritonServer
from hilum.v1 import messages_pb2
from tests.helpers import REPO_ROOT, write_dicom
from tests.integration.conftest import loopback_section

pytestmark = pytest.mark.integration

MODEL = "cxr_findings"
# Not "1": the engine must read weights.json of the version Triton reports, not of a fixed one.
SERVED_VERSION = "3"
PROBABILITY = 0.25
MANIFEST = WeightsManifest(version="test-weights-v7", demo=False, source="test", sha256="0" * 64)

# Only "probabilities", like configs/cpu.pbtxt and configs/gpu.pbtxt; the python backend stands in for
# onnxruntime, which the embedded server does not ship.
CONFIG = f"""
name: "{MODEL}"
backend: "python"
max_batch_size: 8
input [ {{ name: "image" data_type: TYPE_FP32 dims: [ 1, 224, 224 ] }} ]
output [ {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 18 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

MODEL_PY = f'''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            count = pb_utils.get_input_tensor_by_name(request, "image").as_numpy().shape[0]
            probabilities = np.full((count, 18), {PROBABILITY}, dtype=np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("probabilities", probabilities)]))
        return responses
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonSection]:
    """A tritonserver over a repository whose cxr_findings emits only probabilities, with a weights.json."""
    root = tmp_path_factory.mktemp("provenance")
    model_dir = root / "model_repository" / MODEL
    version_dir = model_dir / SERVED_VERSION
    version_dir.mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(CONFIG)
    shutil.copy(REPO_ROOT / "model_repository" / MODEL / LABELS_FILE, model_dir / LABELS_FILE)
    (version_dir / "model.py").write_text(MODEL_PY)
    MANIFEST.write(version_dir)
    section = loopback_section(root / "model_repository")
    with TritonServer(section, work_dir=root / "work", log_file=root / "tritonserver.log"):
        yield section


@pytest.fixture
def engine(served: TritonSection) -> Iterator[FindingsEngine]:
    """A FindingsEngine on that server reading the same model repository; weights.json restored afterwards."""
    labels = load_label_map(served.model_repository / MODEL)
    findings_engine = FindingsEngine(
        served.grpc_url, MODEL, labels, served.request_timeout_s, model_repository=served.model_repository
    )
    yield findings_engine
    findings_engine.close()
    MANIFEST.write(served.model_repository / MODEL / SERVED_VERSION)


@pytest.fixture(scope="module")
def radiograph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small radiograph (a 12-bit gradient): the test model ignores the pixels."""
    pixels = np.tile(np.linspace(0, 4095, 96, dtype=np.uint16), (128, 1))
    return write_dicom(tmp_path_factory.mktemp("radiograph") / "chest.dcm", pixels)


def manifest_path(engine: FindingsEngine) -> Path:
    """weights.json of the served version in the engine's model repository."""
    assert engine.model_repository is not None
    return engine.model_repository / MODEL / SERVED_VERSION / MANIFEST_FILE


def test_version_and_demo_flag_come_from_the_served_versions_manifest(
    engine: FindingsEngine, radiograph: Path
) -> None:
    results = engine.analyse_batch([radiograph, radiograph])

    label_set = findings_label_set(engine.labels)
    assert label_set.startswith("18 labels, sha256 ")
    for result in results:
        # Every result names the weights file (its SHA-256 from weights.json) and the label map it was read with.
        assert result.model == messages_pb2.ModelInfo(name=MODEL, version="test-weights-v7", demo_weights=False,
                                                      weights_sha256="0" * 64, label_set=label_set)
        assert [f.probability for f in result.findings] == pytest.approx([PROBABILITY] * 18)


def test_without_a_manifest_the_version_is_unknown_and_demo(
    engine: FindingsEngine, radiograph: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest_path(engine).unlink()
    with caplog.at_level(logging.WARNING, logger="hilum.inference.engine"):
        first, second = engine.analyse(radiograph), engine.analyse(radiograph)

    unknown = messages_pb2.ModelInfo(name=MODEL, version=UNKNOWN_VERSION, demo_weights=True,
                                     label_set=findings_label_set(engine.labels))
    assert first.model == unknown and second.model == unknown
    assert len([r for r in caplog.records if "weights.json cannot be read" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"version": "v9", "demo": "no", "source": "x", "sha256": "y"}),  # demo must be a bool
        json.dumps({"version": "", "demo": False, "source": "x", "sha256": "y"}),
    ],
)
def test_a_malformed_manifest_never_looks_validated(engine: FindingsEngine, radiograph: Path, content: str) -> None:
    manifest_path(engine).write_text(content)

    result = engine.analyse(radiograph)

    assert result.model == messages_pb2.ModelInfo(name=MODEL, version=UNKNOWN_VERSION, demo_weights=True,
                                                  label_set=findings_label_set(engine.labels))


def test_without_a_local_model_repository_the_version_is_unknown(served: TritonSection, radiograph: Path) -> None:
    labels = load_label_map(served.model_repository / MODEL)
    engine = FindingsEngine(served.grpc_url, MODEL, labels, served.request_timeout_s)
    try:
        result = engine.analyse(radiograph)
    finally:
        engine.close()
    assert result.model == messages_pb2.ModelInfo(name=MODEL, version=UNKNOWN_VERSION, demo_weights=True,
                                                  label_set=findings_label_set(labels))


def test_published_thresholds_of_the_served_version_decide_and_untrained_outputs_are_left_out(
    engine: FindingsEngine, radiograph: Path
) -> None:
    # Every output scores PROBABILITY (0.25). The served version was trained for the first 14 outputs only.
    op_threshs = (0.25, 0.3, 0.4, *[0.5] * 11, None, None, None, None)
    published = WeightsManifest(version="nih-like", demo=False, source="test", sha256="0" * 64, op_threshs=op_threshs)
    published.write(manifest_path(engine).parent)

    result = engine.analyse(radiograph)

    assert [f.code for f in result.findings] == [label.code for label in engine.labels[:14]]
    assert [f.state for f in result.findings[:3]] == [
        messages_pb2.FINDING_STATE_PRESENT,  # at its threshold 0.25
        messages_pb2.FINDING_STATE_UNCERTAIN,  # threshold 0.3, uncertain from 0.24
        messages_pb2.FINDING_STATE_ABSENT,  # threshold 0.4, uncertain from 0.32
    ]
    assert [f.threshold for f in result.findings[:3]] == pytest.approx([0.25, 0.3, 0.4])
    assert result.model.label_set.startswith("14 labels, sha256 ")
