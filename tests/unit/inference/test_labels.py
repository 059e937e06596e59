"""The cxr_findings label map: the shipped labels.json loads, and malformed maps are rejected."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hilum.inference.labels import LabelMapError, LabelSpec, findings_label_set, load_label_map, operating_labels
from tests.helpers import REPO_ROOT

MODEL_DIR = Path(__file__).resolve().parents[3] / "model_repository" / "cxr_findings"


def shipped_document() -> dict[str, Any]:
    """The labels.json shipped with the repository, as parsed JSON."""
    document: dict[str, Any] = json.loads((MODEL_DIR / "labels.json").read_text())
    return document


def test_shipped_label_map_has_the_18_torchxrayvision_labels_in_order() -> None:
    labels = load_label_map(MODEL_DIR)
    assert [label.index for label in labels] == list(range(18))
    assert labels[0] == LabelSpec(0, "atelectasis", "Atelectasis", "46621007", 0.5, 0.4)
    assert labels[3].code == "pneumothorax" and labels[3].snomed == "36118008"
    assert labels[2].code == "infiltration" and labels[2].snomed is None
    assert labels[17].code == "enlarged_cardiomediastinum"
    assert all(0.0 <= label.uncertain_from <= label.threshold <= 1.0 for label in labels)


# The output order of torchxrayvision's published DenseNet-121 weights (densenet121-res224-all): its pathology names.
PUBLISHED_OUTPUTS = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis", "Effusion",
    "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture",
    "Lung Opacity", "Enlarged Cardiomediastinum",
)


def test_each_output_is_read_as_the_pathology_the_published_weights_put_there() -> None:
    codes = [label.code for label in load_label_map(MODEL_DIR)]
    assert codes == [name.lower().replace(" ", "_") for name in PUBLISHED_OUTPUTS]


def test_labels_are_returned_in_index_order(tmp_path: Path) -> None:
    document = shipped_document()
    document["labels"].reverse()
    (tmp_path / "labels.json").write_text(json.dumps(document))
    assert load_label_map(tmp_path) == load_label_map(MODEL_DIR)


def drop_last(labels: list[dict[str, Any]]) -> None:
    labels.pop()


def duplicate_index(labels: list[dict[str, Any]]) -> None:
    labels[1]["index"] = 0


def duplicate_code(labels: list[dict[str, Any]]) -> None:
    labels[1]["code"] = labels[0]["code"]


def uncertain_above_threshold(labels: list[dict[str, Any]]) -> None:
    labels[4]["uncertain_from"] = 0.6


def threshold_above_one(labels: list[dict[str, Any]]) -> None:
    labels[4]["threshold"] = 1.5


def negative_uncertain_from(labels: list[dict[str, Any]]) -> None:
    labels[4]["uncertain_from"] = -0.1


def threshold_as_text(labels: list[dict[str, Any]]) -> None:
    labels[4]["threshold"] = "0.5"


def snomed_not_a_concept_id(labels: list[dict[str, Any]]) -> None:
    labels[4]["snomed"] = "pulmonary edema"


def missing_display(labels: list[dict[str, Any]]) -> None:
    del labels[4]["display"]


@pytest.mark.parametrize(
    "break_it",
    [
        drop_last,
        duplicate_index,
        duplicate_code,
        uncertain_above_threshold,
        threshold_above_one,
        negative_uncertain_from,
        threshold_as_text,
        snomed_not_a_concept_id,
        missing_display,
    ],
)
def test_malformed_label_maps_are_rejected(
    tmp_path: Path, break_it: Callable[[list[dict[str, Any]]], None]
) -> None:
    document = shipped_document()
    break_it(document["labels"])
    (tmp_path / "labels.json").write_text(json.dumps(document))
    with pytest.raises(LabelMapError):
        load_label_map(tmp_path)


def test_missing_or_invalid_file_is_a_label_map_error(tmp_path: Path) -> None:
    with pytest.raises(LabelMapError, match="cannot read"):
        load_label_map(tmp_path)
    (tmp_path / "labels.json").write_text("[1, 2, 3]")
    with pytest.raises(LabelMapError, match="'labels' list"):
        load_label_map(tmp_path)


def test_the_label_set_names_the_map_and_changes_with_any_operating_point() -> None:
    labels = load_label_map(REPO_ROOT / "model_repository" / "cxr_findings")
    label_set = findings_label_set(labels)
    assert label_set.startswith("18 labels, sha256 ") and len(label_set.rsplit(" ", 1)[1]) == 16
    assert findings_label_set(labels) == label_set  # stable
    moved = (dataclasses.replace(labels[0], threshold=labels[0].threshold + 0.01), *labels[1:])
    assert findings_label_set(moved) != label_set


def test_published_thresholds_replace_the_operating_points_and_drop_untrained_outputs() -> None:
    labels = (
        LabelSpec(0, "atelectasis", "Atelectasis", None, 0.5, 0.4),
        LabelSpec(1, "nodule", "Nodule", None, 0.5, 0.5),  # no uncertain band
        LabelSpec(2, "mass", "Mass", None, 0.0, 0.0),
        LabelSpec(3, "fracture", "Fracture", None, 0.5, 0.4),
    )
    scored = operating_labels(labels, (0.1, 0.2, 0.3, None))
    assert [label.code for label in scored] == ["atelectasis", "nodule", "mass"]  # fracture: not trained
    assert [label.threshold for label in scored] == [0.1, 0.2, 0.3]
    # uncertain_from keeps labels.json's fraction of the threshold (the whole threshold where that is 0).
    assert [label.uncertain_from for label in scored] == pytest.approx([0.08, 0.2, 0.3])
    assert operating_labels(labels, None) == labels
    with pytest.raises(LabelMapError, match="3 published operating thresholds for 4 labels"):
        operating_labels(labels, (0.1, 0.2, 0.3))
