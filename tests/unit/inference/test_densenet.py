"""DenseNet-121 layout (torchxrayvision parameter names), outputs and weight loading."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch

from hilum.inference.densenet import DenseNet121, WeightsFileError, demo_model, published_model

# torchvision's densenet121 has 7,978,856 parameters with 3 input channels and 1000 classes; one input
# channel (-2 * 64 * 7 * 7) and an 18-label head (-1024 * 982 - 982) give torchxrayvision's count.
TORCHXRAYVISION_PARAMETERS = 7_978_856 - 2 * 64 * 7 * 7 - 1024 * 982 - 982
NAN = float("nan")
# An op_threshs buffer as torchxrayvision's models carry it: one threshold per output, NaN where untrained.
OP_THRESHS = [0.07, 0.04, NAN, 0.01, 0.02, 0.5, 1.0, 0.1, 0.06, NAN, 0.05, 0.02, 0.02, 0.04, NAN, 0.0, 0.2, NAN]


def smooth_images(count: int, seed: int) -> torch.Tensor:
    """Radiograph-like test inputs: float32 (count, 1, 224, 224), smooth, values in [-1024, 1024]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 6, 6, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=224, mode="bilinear") * 2048.0 - 1024.0


def test_parameter_names_follow_torchxrayvision_layout() -> None:
    state = DenseNet121().state_dict()
    assert state["features.conv0.weight"].shape == (64, 1, 7, 7)
    assert state["features.norm0.running_var"].shape == (64,)
    assert state["features.denseblock1.denselayer1.norm1.weight"].shape == (64,)
    assert state["features.denseblock1.denselayer1.conv1.weight"].shape == (128, 64, 1, 1)
    assert state["features.denseblock1.denselayer1.conv2.weight"].shape == (32, 128, 3, 3)
    assert state["features.transition1.conv.weight"].shape == (128, 256, 1, 1)
    assert state["features.denseblock4.denselayer16.norm2.weight"].shape == (128,)
    assert state["features.norm5.weight"].shape == (1024,)
    assert state["classifier.weight"].shape == (18, 1024)
    assert state["classifier.bias"].shape == (18,)
    for block, layers in enumerate((6, 12, 24, 16), start=1):
        assert f"features.denseblock{block}.denselayer{layers}.conv2.weight" in state
        assert f"features.denseblock{block}.denselayer{layers + 1}.conv2.weight" not in state
    assert "features.transition4.conv.weight" not in state
    assert sum(p.numel() for p in DenseNet121().parameters()) == TORCHXRAYVISION_PARAMETERS


def test_demo_model_gives_image_dependent_probabilities() -> None:
    with torch.no_grad():
        probabilities = demo_model(seed=0)(smooth_images(2, seed=1))
    assert probabilities.shape == (2, 18)
    assert probabilities.dtype == torch.float32
    assert bool(((probabilities >= 0) & (probabilities <= 1)).all())
    # Calibrated batch norm: not saturated at 0, and the two images score differently.
    assert bool((probabilities > 1e-4).all())
    assert not torch.allclose(probabilities[0], probabilities[1])


def test_demo_model_scores_no_finding_so_that_a_demo_never_cries_wolf() -> None:
    """Random weights must not look like findings: every label of images unlike the calibration ones stays far below
    the lowest "uncertain" level of the label map (0.4)."""
    with torch.no_grad():
        probabilities = demo_model(seed=0)(smooth_images(6, seed=7))
    assert float(probabilities.max()) < 0.1


def test_demo_model_is_reproducible_from_its_seed() -> None:
    first, again, other = demo_model(seed=0), demo_model(seed=0), demo_model(seed=1)
    assert torch.equal(first.classifier.weight, again.classifier.weight)
    assert not torch.equal(first.classifier.weight, other.classifier.weight)


def test_published_state_dict_with_data_parallel_prefix_loads(tmp_path: Path) -> None:
    source = demo_model(seed=3)
    weights = tmp_path / "weights.pt"
    torch.save({f"module.{key}": value for key, value in source.state_dict().items()}, weights)
    loaded = published_model(weights).model
    images = smooth_images(1, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), source(images))


def test_pickled_torchxrayvision_module_loads_without_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pickle a module whose class lives in "torchxrayvision.models", as the published files do,
    # then load it with that library absent.
    package, models = types.ModuleType("torchxrayvision"), types.ModuleType("torchxrayvision.models")
    xrv_class = type("DenseNet", (DenseNet121,), {"__module__": "torchxrayvision.models"})
    models.DenseNet = xrv_class  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchxrayvision", package)
    monkeypatch.setitem(sys.modules, "torchxrayvision.models", models)
    source = xrv_class()
    weights = tmp_path / "xrv.pt"
    torch.save(source, weights)
    monkeypatch.delitem(sys.modules, "torchxrayvision.models")
    monkeypatch.delitem(sys.modules, "torchxrayvision")

    loaded = published_model(weights).model
    torch.testing.assert_close(loaded.state_dict(), source.state_dict())


def test_weights_with_other_keys_are_rejected(tmp_path: Path) -> None:
    weights = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(64, 1, 7, 7)}, weights)
    with pytest.raises(WeightsFileError, match="not a torchxrayvision DenseNet-121"):
        published_model(weights)


def xrv_state_dict(seed: int, op_threshs: list[float] | None) -> dict[str, torch.Tensor]:
    """A state_dict in torchxrayvision's key layout with seeded values, plus its op_threshs buffer (float32)."""
    torch.manual_seed(seed)
    state = dict(DenseNet121().state_dict())
    if op_threshs is not None:
        state["op_threshs"] = torch.tensor(op_threshs, dtype=torch.float32)
    return state


def test_the_op_threshs_buffer_is_kept_beside_the_model(tmp_path: Path) -> None:
    state = xrv_state_dict(seed=4, op_threshs=OP_THRESHS)
    weights = tmp_path / "site-densenet.pt"
    torch.save(state, weights)

    published = published_model(weights)

    assert "op_threshs" not in published.model.state_dict()  # calibration, not weights
    torch.testing.assert_close(published.model.classifier.weight, state["classifier.weight"])
    assert published.op_threshs is not None and len(published.op_threshs) == 18
    assert [t is None for t in published.op_threshs] == [math.isnan(t) for t in OP_THRESHS]  # NaN: untrained
    assert published.op_threshs == pytest.approx(
        [None if math.isnan(t) else t for t in OP_THRESHS], abs=1e-7)  # float32 in the file


def test_a_pickled_module_keeps_its_op_threshs_buffer(tmp_path: Path) -> None:
    source = DenseNet121()
    source.register_buffer("op_threshs", torch.tensor(OP_THRESHS))
    weights = tmp_path / "module.pt"
    torch.save(source, weights)
    published = published_model(weights)
    assert published.op_threshs is not None
    assert [index for index, t in enumerate(published.op_threshs) if t is None] == [2, 9, 14, 17]


@pytest.mark.parametrize(
    "op_threshs", [OP_THRESHS[:17], [*OP_THRESHS[:17], 1.5], [*OP_THRESHS[:17], -0.1]], ids=["17", "above", "below"]
)
def test_op_threshs_that_are_not_18_probabilities_are_rejected(tmp_path: Path, op_threshs: list[float]) -> None:
    weights = tmp_path / "weights.pt"
    torch.save(xrv_state_dict(seed=0, op_threshs=op_threshs), weights)
    with pytest.raises(WeightsFileError, match="op_threshs must hold 18 probabilities"):
        published_model(weights)


def test_op_threshs_come_only_from_the_files_own_buffer_never_from_its_name(tmp_path: Path) -> None:
    # Named as a torchxrayvision checkpoint is named: the name says nothing about thresholds.
    torch.save(xrv_state_dict(seed=0, op_threshs=None), tmp_path / "densenet121-res224-nih.pt")
    assert published_model(tmp_path / "densenet121-res224-nih.pt").op_threshs is None  # labels.json decides
    untrained_last = [*OP_THRESHS[:14], NAN, NAN, NAN, NAN]
    torch.save(xrv_state_dict(seed=0, op_threshs=untrained_last), tmp_path / "weights.pt")
    op_threshs = published_model(tmp_path / "weights.pt").op_threshs
    assert op_threshs is not None and op_threshs[14:] == (None, None, None, None)
    assert op_threshs[:14] == pytest.approx([None if math.isnan(t) else t for t in OP_THRESHS[:14]], abs=1e-7)
