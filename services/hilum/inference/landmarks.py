"""The cxr_devices landmark map (landmarks.json) and its heatmaps read back as landmarks in original pixels.

The model sees the whole radiograph area-averaged to INPUT_SIZE x INPUT_SIZE (common/preprocessing.whole_image_input)
and answers one heatmap per landmark at HEATMAP_STRIDE: heatmap cell (r, c) covers input pixels
[stride * r, stride * (r + 1)), whose centre stride * r + stride / 2 lies at original row
(stride * r + stride / 2) * rows / INPUT_SIZE - 0.5 (pixel centres at integer coordinates). A landmark's
confidence is its heatmap's peak value; its position is the peak cell's centre.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hilum.common.preprocessing import WHOLE_IMAGE_INPUT_SIZE
from hilum.common.reported_findings import DeviceType
from hilum.inference.device_geometry import Landmark
from hilum.inference.labels import label_set_id

LANDMARK_FILE = "landmarks.json"
INPUT_SIZE = WHOLE_IMAGE_INPUT_SIZE  # the side of the model's square input (cxr_devices' config.pbtxt)
HEATMAP_STRIDE = 4  # input pixels per heatmap cell along each axis


@dataclass(frozen=True)
class LandmarkSpec:
    """One heatmap of the model: its channel, code ("ett_tip"), display ("Carina") and, for a tube or line's
    tip, the kind of device it is the tip of (None for anatomy)."""

    index: int
    code: str
    display: str
    device: DeviceType | None


def load_landmark_map(model_dir: Path) -> tuple[LandmarkSpec, ...]:
    """The landmarks of model_dir/landmarks.json in channel order; raises ValueError when the file is malformed."""
    raw = json.loads((model_dir / LANDMARK_FILE).read_text())
    entries = raw.get("landmarks") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{model_dir / LANDMARK_FILE}: expected a non-empty 'landmarks' list")
    specs = []
    for position, entry in enumerate(entries):
        try:
            device = entry["device"]
            spec = LandmarkSpec(int(entry["index"]), str(entry["code"]), str(entry["display"]),
                                None if device is None else DeviceType(device))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{model_dir / LANDMARK_FILE}: landmark {position} is malformed ({exc})") from exc
        if spec.index != position:
            raise ValueError(f"{model_dir / LANDMARK_FILE}: landmark {spec.code} has index {spec.index}, "
                             f"not {position}")
        specs.append(spec)
    return tuple(specs)


def landmark_set(specs: Sequence[LandmarkSpec]) -> str:
    """label_set_id of a landmark map: each heatmap's index and code."""
    return label_set_id(f"{spec.index}:{spec.code}" for spec in specs)


def heatmap_peaks(heatmaps: npt.NDArray[np.float32], rows: int, columns: int) -> list[Landmark]:
    """One Landmark per heatmap of heatmaps (K, H, W) of an image of rows x columns pixels: the peak's value as
    confidence and its cell's centre, mapped back to original pixels (module docstring)."""
    count, height, width = heatmaps.shape
    flat = heatmaps.reshape(count, -1)
    peaks = np.argmax(flat, axis=1)
    landmarks = []
    for channel, peak in enumerate(peaks):
        cell_row, cell_column = divmod(int(peak), width)
        confidence = float(np.clip(flat[channel, peak], 0.0, 1.0))
        landmarks.append(Landmark(
            row=_original(cell_row, height, rows), column=_original(cell_column, width, columns), confidence=confidence,
        ))
    return landmarks


def _original(cell: int, cells: int, pixels: int) -> float:
    """The original pixel coordinate of a heatmap cell's centre along one axis."""
    stride = INPUT_SIZE / cells
    return (stride * cell + stride / 2) * pixels / INPUT_SIZE - 0.5
