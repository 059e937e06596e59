"""The engine's pure parts: finding states from the operating points, and model outputs checked into results.

The Triton call itself is tested against a real server in tests/integration/test_triton_findings.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hilum.common.dicom import pixels
from hilum.inference import engine
from hilum.inference.engine import (
    InferenceFailed,
    Provenance,
    ServedModel,
    engine_results,
    finding_for,
    manifest_provenance,
    served_model,
)
from hilum.inference.labels import LabelSpec, findings_label_set, load_label_map, operating_labels
from hilum.inference.model_export import MANIFEST_FILE, WeightsManifest
from hilum.v1 import messages_pb2
from tests.helpers import REPO_ROOT

LABELS = (
    LabelSpec(index=0, code="atelectasis", display="Atelectasis", snomed="46621007", threshold=0.6, uncertain_from=0.4),
    LabelSpec(index=1, code="nodule", display="Nodule", snomed=None, threshold=0.5, uncertain_from=0.5),
)
VERSIONS = np.array([b"demo-untrained", "v2"], dtype=np.object_)
DEMO = np.array([True, False])


def probabilities(*rows: list[float]) -> npt.NDArray[np.float32]:
    return np.array(rows, np.float32)


@pytest.mark.parametrize(
    ("probability", "state"),
    [
        (0.99, messages_pb2.FINDING_STATE_PRESENT),
        (0.6, messages_pb2.FINDING_STATE_PRESENT),  # at the threshold
        (0.59, messages_pb2.FINDING_STATE_UNCERTAIN),
        (0.4, messages_pb2.FINDING_STATE_UNCERTAIN),  # at uncertain_from
        (0.39, messages_pb2.FINDING_STATE_ABSENT),
        (0.0, messages_pb2.FINDING_STATE_ABSENT),
    ],
)
def test_finding_state_follows_the_operating_points(probability: float, state: int) -> None:
    finding = finding_for(LABELS[0], probability)
    assert finding.state == state
    assert (finding.code, finding.display, finding.snomed_code) == ("atelectasis", "Atelectasis", "46621007")
    assert finding.probability == pytest.approx(probability)
    assert finding.threshold == pytest.approx(0.6)


def test_without_an_uncertain_band_a_finding_is_present_or_absent() -> None:
    assert finding_for(LABELS[1], 0.5).state == messages_pb2.FINDING_STATE_PRESENT
    assert finding_for(LABELS[1], 0.49).state == messages_pb2.FINDING_STATE_ABSENT
    assert finding_for(LABELS[1], 0.2).snomed_code == ""  # no SNOMED CT code where it is ambiguous


def test_results_follow_input_order_and_label_indices() -> None:
    results = engine_results("cxr_findings", LABELS, 2, probabilities([0.7, 0.1], [0.2, 0.9]), VERSIONS, DEMO)
    assert len(results) == 2
    first, second = results
    label_set = findings_label_set(LABELS)  # no published thresholds: the label map as it is
    assert first.model == messages_pb2.ModelInfo(
        name="cxr_findings", version="demo-untrained", demo_weights=True, label_set=label_set)
    assert second.model == messages_pb2.ModelInfo(
        name="cxr_findings", version="v2", demo_weights=False, label_set=label_set)
    assert [f.code for f in first.findings] == ["atelectasis", "nodule"]
    assert [f.state for f in first.findings] == [messages_pb2.FINDING_STATE_PRESENT, messages_pb2.FINDING_STATE_ABSENT]
    assert [f.state for f in second.findings] == [messages_pb2.FINDING_STATE_ABSENT, messages_pb2.FINDING_STATE_PRESENT]


def test_results_take_each_label_from_its_own_output_index() -> None:
    swapped = (LABELS[1], LABELS[0])  # label order and output order differ
    (result,) = engine_results("m", swapped, 1, probabilities([0.7, 0.1]), VERSIONS[:1], DEMO[:1])
    assert [(f.code, round(f.probability, 2)) for f in result.findings] == [("nodule", 0.1), ("atelectasis", 0.7)]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ((None, VERSIONS, DEMO), "expected probabilities (2, 2), got None"),
        ((probabilities([0.1, 0.2]), VERSIONS, DEMO), "expected probabilities (2, 2), got (1, 2)"),
        ((probabilities([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]), VERSIONS, DEMO), "got (2, 3)"),
        ((probabilities([0.1, 1.2], [0.1, 0.2]), VERSIONS, DEMO), "outside [0, 1]"),
        ((probabilities([0.1, -0.1], [0.1, 0.2]), VERSIONS, DEMO), "outside [0, 1]"),
        ((probabilities([0.1, 0.2], [0.1, 0.2]), None, DEMO), "must come with every image"),
        ((probabilities([0.1, 0.2], [0.1, 0.2]), VERSIONS, DEMO[:1]), "must come with every image"),
    ],
)
def test_outputs_out_of_contract_fail(
    outputs: tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.object_] | None, npt.NDArray[np.bool_]],
    message: str,
) -> None:
    with pytest.raises(InferenceFailed, match=re.escape(message)):
        engine_results("cxr_findings", LABELS, 2, *outputs)


def test_engine_reports_the_decoder_error_type() -> None:
    # inference.service catches engine.ImageUnreadable: it must be the one the decode path raises.
    assert engine.ImageUnreadable is pixels.ImageUnreadable
    assert {"ImageUnreadable", "InferenceFailed", "TritonUnavailable"} <= set(engine.__all__)


def test_served_model_is_the_highest_ready_version_with_its_outputs() -> None:
    served = served_model(["1", "10", "2"], ["probabilities"])
    assert served == ServedModel(version="10", outputs=frozenset({"probabilities"}))
    assert not served.reports_provenance
    assert served_model([], ["probabilities"]).version == ""


def test_only_both_provenance_outputs_count_as_reporting_provenance() -> None:
    assert served_model(["1"], ["probabilities", "model_version", "demo_weights"]).reports_provenance
    assert not served_model(["1"], ["probabilities", "model_version"]).reports_provenance


def test_manifest_provenance_reads_version_demo_flag_and_sha256(tmp_path: Path) -> None:
    WeightsManifest(version="published-abc", demo=False, source="file", sha256="0" * 64).write(tmp_path)
    assert manifest_provenance(tmp_path) == Provenance(version="published-abc", demo=False, sha256="0" * 64)


def test_manifest_provenance_raises_where_there_is_nothing_to_trust(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        manifest_provenance(tmp_path)  # no weights.json
    with pytest.raises(OSError):
        manifest_provenance(None)
    (tmp_path / MANIFEST_FILE).write_text("[]")
    with pytest.raises(ValueError):
        manifest_provenance(tmp_path)


def test_unknown_provenance_never_looks_validated() -> None:
    assert engine.UNKNOWN_PROVENANCE == Provenance(version="unknown", demo=True)


# A weights version's published operating thresholds (weights.json "op_threshs"), like torchxrayvision's
# densenet121-res224-nih: trained for the first 14 outputs, not for the last 4 (None, NaN in the checkpoint).
PUBLISHED = (0.25, 0.05, 0.1, 0.01, *[0.5] * 10, None, None, None, None)


def shipped_labels() -> tuple[LabelSpec, ...]:
    return load_label_map(REPO_ROOT / "model_repository" / "cxr_findings")


def test_outputs_the_weights_were_not_trained_for_are_left_out() -> None:
    labels = shipped_labels()
    row = np.full((1, 18), 0.99, np.float32)  # an untrained output says anything: here "certain"
    (result,) = engine_results("cxr_findings", labels, 1, row, VERSIONS[1:], DEMO[1:], PUBLISHED)
    assert [f.code for f in result.findings] == [label.code for label in labels[:14]]
    assert {"lung_lesion", "fracture", "lung_opacity", "enlarged_cardiomediastinum"}.isdisjoint(
        f.code for f in result.findings)
    # The result names the 14 labels it was read with and their published operating points.
    assert result.model.label_set == findings_label_set(operating_labels(labels, PUBLISHED))
    assert result.model.label_set.startswith("14 labels, sha256 ")
    assert result.model.label_set != findings_label_set(labels)


@pytest.mark.parametrize(
    ("probability", "state"),
    [
        (0.25, messages_pb2.FINDING_STATE_PRESENT),  # at the published threshold (labels.json says 0.5)
        (0.26, messages_pb2.FINDING_STATE_PRESENT),
        (0.2499, messages_pb2.FINDING_STATE_UNCERTAIN),  # just below it
        (0.21, messages_pb2.FINDING_STATE_UNCERTAIN),  # uncertain from 0.25 * (0.4 / 0.5) = 0.2
        (0.19, messages_pb2.FINDING_STATE_ABSENT),
    ],
)
def test_the_published_threshold_decides_present_and_the_uncertain_band_keeps_its_ratio(
    probability: float, state: int
) -> None:
    labels = shipped_labels()
    row = np.full((1, 18), 0.001, np.float32)
    row[0, 0] = probability  # atelectasis: published threshold 0.25
    (result,) = engine_results("cxr_findings", labels, 1, row, VERSIONS[1:], DEMO[1:], PUBLISHED)
    atelectasis = result.findings[0]
    assert atelectasis.code == "atelectasis"
    assert atelectasis.state == state
    assert atelectasis.threshold == pytest.approx(0.25)  # the threshold the state came from
    assert all(f.state == messages_pb2.FINDING_STATE_ABSENT for f in result.findings[1:])


def test_without_published_thresholds_labels_json_decides_every_output() -> None:
    labels = shipped_labels()
    row = np.full((1, 18), 0.45, np.float32)
    (result,) = engine_results("cxr_findings", labels, 1, row, VERSIONS[1:], DEMO[1:], None)
    assert len(result.findings) == 18
    assert {f.state for f in result.findings} == {messages_pb2.FINDING_STATE_UNCERTAIN}  # 0.4 <= 0.45 < 0.5
    assert result.model.label_set == findings_label_set(labels)


def test_published_thresholds_that_do_not_fit_the_label_map_fail() -> None:
    with pytest.raises(InferenceFailed, match="weights.json does not fit the label map"):
        engine_results("cxr_findings", shipped_labels(), 1, np.zeros((1, 18), np.float32), VERSIONS[1:], DEMO[1:],
                       PUBLISHED[:17])


def test_manifest_provenance_carries_the_published_thresholds(tmp_path: Path) -> None:
    WeightsManifest("nih-abc", False, "file", "0" * 64, op_threshs=PUBLISHED).write(tmp_path)
    assert manifest_provenance(tmp_path).op_threshs == PUBLISHED
    WeightsManifest(version="demo-untrained", demo=True, source="seed", sha256="0").write(tmp_path)
    assert manifest_provenance(tmp_path).op_threshs is None
