"""The cxr_devices landmark map and heatmaps read back as points in the original image's pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hilum.common.reported_findings import DeviceType
from hilum.inference import landmark_net
from hilum.inference.device_placement import REFERENCE_LANDMARK
from hilum.inference.landmarks import HEATMAP_STRIDE, INPUT_SIZE, heatmap_peaks, load_landmark_map
from tests.helpers import REPO_ROOT

MODEL_DIR = REPO_ROOT / "model_repository" / "cxr_devices"


def test_the_map_names_each_heatmap_with_its_device_or_anatomy() -> None:
    specs = load_landmark_map(MODEL_DIR)
    assert [spec.code for spec in specs] == list(landmark_net.LANDMARKS)
    tips = {spec.device for spec in specs if spec.device is not None}
    assert tips == set(DeviceType)
    anatomy = {spec.display.lower() for spec in specs if spec.device is None}
    assert set(REFERENCE_LANDMARK.values()) <= anatomy  # every rule's reference can be found


def test_the_engine_and_the_model_agree_on_the_input_and_the_stride() -> None:
    assert (INPUT_SIZE, HEATMAP_STRIDE) == (landmark_net.INPUT_SIZE, landmark_net.HEATMAP_STRIDE)


@pytest.mark.parametrize("broken", [
    {"landmarks": []},
    {"landmarks": [{"index": 1, "code": "carina", "display": "Carina", "device": None}]},
    {"landmarks": [{"index": 0, "code": "x_tip", "display": "X", "device": "stent"}]},
    {"landmarks": [{"index": 0, "code": "carina"}]},
])
def test_a_malformed_map_is_refused(broken: dict[str, object], tmp_path: Path) -> None:
    (tmp_path / "landmarks.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="landmarks.json"):
        load_landmark_map(tmp_path)


@pytest.mark.parametrize(("rows", "columns"), [(2500, 2000), (512, 512), (1000, 3000)])
def test_a_peak_maps_back_to_the_centre_of_the_pixels_its_cell_covers(rows: int, columns: int) -> None:
    heatmaps = np.zeros((2, 128, 128), dtype=np.float32)
    heatmaps[0, 10, 100] = 0.9
    heatmaps[1, 127, 0] = 0.3
    first, second = heatmap_peaks(heatmaps, rows, columns)
    # Cell 10 covers input pixels 40..43, centre 42 of 512; the original's pixel centres sit at integers.
    assert first.row == pytest.approx(42 * rows / 512 - 0.5)
    assert first.column == pytest.approx(402 * columns / 512 - 0.5)
    assert first.confidence == pytest.approx(0.9)
    assert second.row == pytest.approx(510 * rows / 512 - 0.5) and second.confidence == pytest.approx(0.3)
    assert 0 <= second.column < columns / 128
