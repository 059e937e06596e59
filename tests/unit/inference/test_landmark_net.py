"""LandmarkNet layout and outputs, demo weights that find nothing, and loading of hospital-supplied weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hilum.inference.device_placement import DEFAULT_MIN_CONFIDENCE
from hilum.inference.landmark_net import (
    LANDMARKS,
    LandmarkNet,
    LandmarkWeightsError,
    demo_model,
    published_landmark_model,
)

# The layout a hospital trains against: changing it breaks every provisioned state_dict, so it is pinned.
PARAMETERS = 1_986_521
# Far below the level at which a landmark counts as found (0.5): a demo must never show a device.
DEMO_MAXIMUM = 0.05


@pytest.fixture(scope="module")
def demo() -> LandmarkNet:
    """The demo model of seed 0, built once for this module."""
    return demo_model(seed=0)


def smooth_images(count: int, seed: int) -> torch.Tensor:
    """Radiograph-like test inputs: float32 (count, 1, 512, 512), smooth, values in [-1024, 1024]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 6, 6, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=512, mode="bilinear") * 2048.0 - 1024.0


def stress_images() -> torch.Tensor:
    """Inputs unlike the calibration ones: float32 (7, 1, 512, 512) in [-1024, 1024]: all dark, all bright, a fine
    checkerboard, coarse stripes, a bright vertical line (a tube) on a smooth image, white and binary noise."""
    generator = torch.Generator().manual_seed(11)
    index = torch.arange(512)
    checker = ((index[:, None] // 2 + index[None, :] // 2) % 2).float() * 2048.0 - 1024.0
    stripes = ((index[None, :] // 32) % 2).float().expand(512, 512) * 2048.0 - 1024.0
    tube = (smooth_images(1, seed=3)[0, 0] + 1500.0 * ((index[None, :] - 256).abs() < 3).float()).clamp(-1024, 1024)
    white = torch.rand(512, 512, generator=generator) * 2048.0 - 1024.0
    binary = (torch.rand(512, 512, generator=generator) > 0.5).float() * 2048.0 - 1024.0
    planes = [torch.full((512, 512), -1024.0), torch.full((512, 512), 1024.0), checker, stripes, tube, white, binary]
    return torch.stack(planes)[:, None]


def test_the_landmarks_are_the_device_tips_and_their_references() -> None:
    assert LANDMARKS == (
        "ett_tip",
        "carina",
        "ng_tip",
        "gastroesophageal_junction",
        "cvc_tip",
        "picc_tip",
        "cavoatrial_junction",
        "chest_tube_tip",
        "pacemaker_lead_tip",
    )


def test_parameter_names_and_shapes_are_stable() -> None:
    state = LandmarkNet().state_dict()
    assert state["stem.conv1.conv.weight"].shape == (16, 1, 3, 3)
    assert state["stem.conv2.norm.running_var"].shape == (32,)
    assert state["stage1.conv1.conv.weight"].shape == (32, 32, 3, 3)
    assert state["stage1.norm2.weight"].shape == (32,)
    assert state["stage2.down.conv.weight"].shape == (64, 32, 3, 3)
    assert state["stage3.block.conv2.weight"].shape == (128, 128, 3, 3)
    assert state["stage4.block.norm2.num_batches_tracked"].shape == ()
    assert state["lateral.0.weight"].shape == (32, 32, 1, 1)
    assert state["lateral.3.weight"].shape == (32, 256, 1, 1)
    assert state["refine.conv.weight"].shape == (32, 32, 3, 3)
    assert state["head.weight"].shape == (9, 32, 1, 1)
    assert state["head.bias"].shape == (9,)
    assert "lateral.4.weight" not in state
    assert sum(p.numel() for p in LandmarkNet().parameters()) == PARAMETERS


def test_heatmaps_have_one_map_per_landmark_at_stride_4(demo: LandmarkNet) -> None:
    with torch.no_grad():
        heatmaps = demo(smooth_images(2, seed=1))
    assert heatmaps.shape == (2, len(LANDMARKS), 128, 128)
    assert heatmaps.dtype == torch.float32
    assert bool(((heatmaps > 0) & (heatmaps < 1)).all())
    # Calibrated batch norm keeps the maps image-dependent: each image's pixels reach its own heatmaps.
    assert not torch.allclose(heatmaps[0], heatmaps[1], atol=1e-5)


def test_demo_model_finds_no_landmark_on_smooth_images(demo: LandmarkNet) -> None:
    with torch.no_grad():
        heatmaps = demo(smooth_images(4, seed=7))
    assert float(heatmaps.max()) < DEMO_MAXIMUM < DEFAULT_MIN_CONFIDENCE


def test_demo_model_finds_no_landmark_on_harsh_images(demo: LandmarkNet) -> None:
    """Edges, lines and noise at full contrast, unlike anything in the calibration set, still find nothing."""
    with torch.no_grad():
        heatmaps = demo(stress_images())
    assert float(heatmaps.amax(dim=(1, 2, 3)).max()) < DEMO_MAXIMUM


def test_demo_model_is_reproducible_from_its_seed(demo: LandmarkNet) -> None:
    again, other = demo_model(seed=0), demo_model(seed=1)
    assert all(torch.equal(value, again.state_dict()[key]) for key, value in demo.state_dict().items())
    assert not torch.equal(demo.head.weight, other.head.weight)
    statistics = "stem.conv1.norm.running_mean"
    assert not torch.equal(demo.state_dict()[statistics], other.state_dict()[statistics])


def test_published_state_dict_round_trips(demo: LandmarkNet, tmp_path: Path) -> None:
    weights = tmp_path / "landmarks.pt"
    torch.save({f"module.{key}": value for key, value in demo.state_dict().items()}, weights)
    loaded = published_landmark_model(weights)
    assert not loaded.training
    images = smooth_images(1, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), demo(images))


def test_weights_with_other_keys_are_refused_with_the_keys_named(tmp_path: Path) -> None:
    state = LandmarkNet().state_dict()
    state["head.extra"] = state.pop("head.bias")
    weights = tmp_path / "other.pt"
    torch.save(state, weights)
    with pytest.raises(LandmarkWeightsError, match=r"missing keys \['head.bias'\], unexpected keys \['head.extra'\]"):
        published_landmark_model(weights)


def test_weights_with_other_shapes_are_refused(tmp_path: Path) -> None:
    state = LandmarkNet().state_dict()
    state["head.weight"] = torch.zeros(14, 32, 1, 1)  # trained for other landmarks
    weights = tmp_path / "fourteen.pt"
    torch.save(state, weights)
    with pytest.raises(LandmarkWeightsError, match=r"wrong shapes for keys \['head.weight'\]"):
        published_landmark_model(weights)


def test_a_pickled_module_or_a_non_torch_file_is_refused(tmp_path: Path) -> None:
    module_file, text_file = tmp_path / "module.pt", tmp_path / "notes.txt"
    torch.save(LandmarkNet(), module_file)
    text_file.write_text("not weights")
    for weights in (module_file, text_file):
        with pytest.raises(LandmarkWeightsError, match="not a plain torch state_dict"):
            published_landmark_model(weights)


def test_a_file_holding_something_else_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], weights)
    with pytest.raises(LandmarkWeightsError, match="holds a list, not a state_dict"):
        published_landmark_model(weights)
