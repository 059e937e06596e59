"""The findings model's label map (labels.json next to config.pbtxt): codes, names and thresholds.

The label order is the model's output order, so the map is validated strictly when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

LABELS_FILE = "labels.json"
NUM_LABELS = 18

# One operating threshold per model output, by output index, as a weights version publishes them (weights.json
# "op_threshs"); None for an output those weights were not trained for.
OperatingThresholds = tuple[float | None, ...]


class LabelMapError(ValueError):
    """labels.json is missing, malformed, or disagrees with the model's 18 outputs."""


@dataclass(frozen=True)
class LabelSpec:
    """One model output: its index, Hilum code, display name, SNOMED CT code (None where ambiguous),
    and operating points: PRESENT at probability >= threshold, UNCERTAIN at >= uncertain_from.
    """

    index: int
    code: str
    display: str
    snomed: str | None
    threshold: float
    uncertain_from: float


def load_label_map(model_dir: Path) -> tuple[LabelSpec, ...]:
    """Reads model_dir/labels.json; returns the 18 labels ordered by output index, or raises LabelMapError."""
    path = model_dir / LABELS_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LabelMapError(f"{path}: cannot read the label map: {exc}") from exc
    entries = document.get("labels") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise LabelMapError(f"{path}: expected an object with a 'labels' list")
    labels = tuple(sorted((_label(path, entry) for entry in entries), key=lambda label: label.index))
    if [label.index for label in labels] != list(range(NUM_LABELS)):
        raise LabelMapError(f"{path}: expected indices 0..{NUM_LABELS - 1} exactly once each")
    if len({label.code for label in labels}) != NUM_LABELS:
        raise LabelMapError(f"{path}: label codes must be unique")
    return labels


def _label(path: Path, entry: Any) -> LabelSpec:
    """One labels.json entry as a LabelSpec, checking types and 0 <= uncertain_from <= threshold <= 1."""
    if not isinstance(entry, dict):
        raise LabelMapError(f"{path}: each label must be an object, got {entry!r}")
    index, code, display, snomed = (entry.get(key) for key in ("index", "code", "display", "snomed"))
    if not isinstance(index, int) or isinstance(index, bool):
        raise LabelMapError(f"{path}: label {entry!r} needs an integer 'index'")
    if not (isinstance(code, str) and code and isinstance(display, str) and display):
        raise LabelMapError(f"{path}: label {index} needs non-empty 'code' and 'display'")
    if snomed is not None and not (isinstance(snomed, str) and snomed.isdigit()):
        raise LabelMapError(f"{path}: label {code}: 'snomed' must be a SNOMED CT concept id or null")
    threshold, uncertain_from = (
        _number(path, code, entry, "threshold"),
        _number(path, code, entry, "uncertain_from"),
    )
    if not 0.0 <= uncertain_from <= threshold <= 1.0:
        raise LabelMapError(f"{path}: label {code}: need 0 <= uncertain_from <= threshold <= 1")
    return LabelSpec(index, code, display, snomed, threshold, uncertain_from)


def _number(path: Path, code: str, entry: dict[str, Any], key: str) -> float:
    """entry[key] as a float; raises LabelMapError when it is missing or not a JSON number."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LabelMapError(f"{path}: label {code}: {key!r} must be a number, got {value!r}")
    return float(value)


def operating_labels(labels: tuple[LabelSpec, ...], op_threshs: OperatingThresholds | None) -> tuple[LabelSpec, ...]:
    """The labels one weights version is scored with. Without published thresholds: labels as they are. With them:
    only the outputs the weights were trained for (None leaves a label out), each PRESENT at its published threshold
    and UNCERTAIN from the same fraction of it as labels.json gives (uncertain_from / threshold).
    Raises LabelMapError when op_threshs does not give one entry per label.
    """
    if op_threshs is None:
        return labels
    if len(op_threshs) != len(labels):
        raise LabelMapError(f"{len(op_threshs)} published operating thresholds for {len(labels)} labels")
    scored = []
    for label in labels:
        published = op_threshs[label.index]
        if published is not None:
            fraction = label.uncertain_from / label.threshold if label.threshold > 0.0 else 1.0
            scored.append(replace(label, threshold=published, uncertain_from=published * fraction))
    return tuple(scored)


def label_set_id(entries: Iterable[str]) -> str:
    """A short, stable name for a set of model outputs as read: "<n> labels, sha256 <16 hex>" of its entries (one
    line each: what the output is called and how it is judged), recorded with every result."""
    lines = list(entries)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return f"{len(lines)} labels, sha256 {digest[:16]}"


def findings_label_set(labels: tuple[LabelSpec, ...]) -> str:
    """label_set_id of a findings label map: each label's index, code and operating points."""
    return label_set_id(f"{label.index}:{label.code}:{label.threshold}:{label.uncertain_from}" for label in labels)
