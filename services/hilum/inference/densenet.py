"""DenseNet-121 for the cxr_findings model, written in plain torch (no torchvision).

Module and parameter names follow the torchxrayvision layout (features.conv0, features.denseblock1.
denselayer1.norm1, ..., features.norm5, classifier), so its published state_dicts load unchanged.
This module imports torch: only the model-building code may import it, never a running service.
"""

from __future__ import annotations

import math
import pickle
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from hilum.inference.labels import OperatingThresholds

GROWTH_RATE = 32
BLOCK_CONFIG = (6, 12, 24, 16)
INIT_FEATURES = 64
BOTTLENECK_SIZE = 4
NUM_LABELS = 18
INPUT_SIZE = 224
# Smooth synthetic images used to set the demo model's batch-norm statistics (see demo_model).
CALIBRATION_IMAGES = 4
CALIBRATION_NOISE = 64.0  # pixel noise, in the [-1024, 1024] input units
# The demo head is calibrated so that a demo never cries wolf: on the calibration images every label scores about
# DEMO_PROBABILITY, far below any label's "uncertain" level (labels.json), with logits spread by DEMO_LOGIT_SPREAD
# (one standard deviation) so that outputs still differ from image to image.
DEMO_PROBABILITY = 0.02
DEMO_LOGIT_SPREAD = 0.05


class WeightsFileError(ValueError):
    """An operator-supplied weights file is not a DenseNet-121 state_dict in the torchxrayvision layout."""


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 producing growth_rate new feature maps from all earlier ones."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        bottleneck = BOTTLENECK_SIZE * GROWTH_RATE
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_features, bottleneck, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bottleneck, GROWTH_RATE, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (N, in_features, H, W) -> new features (N, GROWTH_RATE, H, W)."""
        bottleneck = self.conv1(self.relu1(self.norm1(features)))
        out: torch.Tensor = self.conv2(self.relu2(self.norm2(bottleneck)))
        return out


class DenseBlock(nn.ModuleDict):
    """num_layers dense layers, each fed the concatenation of the block input and all earlier outputs."""

    def __init__(self, num_layers: int, in_features: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_features + i * GROWTH_RATE))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (N, C, H, W) -> (N, C + num_layers * GROWTH_RATE, H, W)."""
        collected = [features]
        for layer in self.values():
            collected.append(layer(torch.cat(collected, dim=1)))
        return torch.cat(collected, dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 then 2x2 average pooling: halves the channels and the spatial size."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_features))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(in_features, out_features, kernel_size=1, stride=1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet121(nn.Module):
    """DenseNet-121 with one grey input channel and an 18-label sigmoid head (torchxrayvision order).

    Input: float32 (N, 1, 224, 224), values in [-1024, 1024]. Output: probabilities float32 (N, 18).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module(
            "conv0", nn.Conv2d(1, INIT_FEATURES, kernel_size=7, stride=2, padding=3, bias=False)
        )
        self.features.add_module("norm0", nn.BatchNorm2d(INIT_FEATURES))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        channels = INIT_FEATURES
        for i, num_layers in enumerate(BLOCK_CONFIG):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(num_layers, channels))
            channels += num_layers * GROWTH_RATE
            if i != len(BLOCK_CONFIG) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, NUM_LABELS)
        self._initialise()

    def _initialise(self) -> None:
        """The usual DenseNet initialisation: He-normal convolutions, unit BN scale, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1.0)
                nn.init.constant_(module.bias, 0.0)
            elif isinstance(module, nn.Linear):
                nn.init.constant_(module.bias, 0.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: float32 (N, 1, 224, 224) in [-1024, 1024] -> probabilities float32 (N, 18) in [0, 1]."""
        features = functional.relu(self.features(image))
        pooled = torch.flatten(functional.adaptive_avg_pool2d(features, (1, 1)), 1)
        return torch.sigmoid(self.classifier(pooled))


def demo_model(seed: int) -> DenseNet121:
    """Seeded random DenseNet-121 in eval mode, batch-norm statistics set from smooth noisy synthetic images, and a
    head calibrated to score no finding (DEMO_PROBABILITY per label on those images).

    Fresh statistics (mean 0, variance 1) let activations of inputs in [-1024, 1024] grow through 121
    layers until every probability is exactly 0 or 1; calibrated ones keep demo outputs image-dependent.
    """
    torch.manual_seed(seed)
    model = DenseNet121()
    coarse = torch.rand(CALIBRATION_IMAGES, 1, 8, 8)
    smooth = functional.interpolate(coarse, size=INPUT_SIZE, mode="bilinear") * 2048.0 - 1024.0
    images = smooth + CALIBRATION_NOISE * torch.randn(CALIBRATION_IMAGES, 1, INPUT_SIZE, INPUT_SIZE)
    set_batch_norm_statistics(model, images)
    _calibrate_head(model, images)
    return model


def set_batch_norm_statistics(model: nn.Module, images: torch.Tensor) -> None:
    """Every batch norm of model takes the mean and variance of its input over images (one pass), then model is put
    in eval mode: the demo models' random weights then keep activations in range instead of saturating."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one pass stores the batch statistics
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()


def _calibrate_head(model: DenseNet121, images: torch.Tensor) -> None:
    """Scale and shift the classifier so that its logits on images have mean logit(DEMO_PROBABILITY) and standard
    deviation DEMO_LOGIT_SPREAD per label: random weights then say "no finding", differently for each image."""
    with torch.no_grad():
        pooled = torch.flatten(functional.adaptive_avg_pool2d(functional.relu(model.features(images)), (1, 1)), 1)
        logits = model.classifier(pooled)
        scale = DEMO_LOGIT_SPREAD / logits.std(dim=0).clamp_min(1e-6)
        model.classifier.weight.mul_(scale[:, None])
        shifted = logits.mean(dim=0) * scale
        target = torch.logit(torch.tensor(DEMO_PROBABILITY))
        model.classifier.bias.copy_(model.classifier.bias * scale - shifted + target)


@dataclass(frozen=True)
class PublishedModel:
    """A DenseNet-121 with published weights, in eval mode, and the operating threshold per output published with
    them (torchxrayvision's op_threshs, None for an output they were not trained for), or None when the file has none.
    """

    model: DenseNet121
    op_threshs: OperatingThresholds | None


def published_model(weights: Path) -> PublishedModel:
    """DenseNet-121 in eval mode with weights from an operator-supplied file (a state_dict or a pickled
    torchxrayvision module), with the file's own op_threshs buffer (None when it has none); nothing is downloaded.
    Raises WeightsFileError when the keys or the op_threshs do not match.
    """
    try:
        loaded: Any = torch.load(weights, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torchxrayvision publishes whole pickled modules; the operator vouches for the file they name.
        loaded = torch.load(weights, map_location="cpu", weights_only=False, pickle_module=_STAND_IN_PICKLE)
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if not isinstance(loaded, Mapping):
        raise WeightsFileError(f"{weights}: holds a {type(loaded).__name__}, not a state_dict or a module")
    state = {str(key).removeprefix("module."): value for key, value in loaded.items()}
    # torchxrayvision's operating thresholds are calibration, not weights: they go to weights.json, not the model.
    buffer = state.pop("op_threshs", None)
    op_threshs = None if buffer is None else _op_threshs(weights, buffer)
    model = DenseNet121()
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise WeightsFileError(
            f"{weights}: not a torchxrayvision DenseNet-121 state_dict "
            f"(missing keys {missing[:3]}, unexpected keys {unexpected[:3]})"
        )
    model.load_state_dict(state)
    return PublishedModel(model.eval(), op_threshs)


def _op_threshs(weights: Path, buffer: Any) -> OperatingThresholds:
    """The op_threshs buffer as NUM_LABELS probabilities, NaN as None; raises WeightsFileError when it is not that."""
    values = torch.as_tensor(buffer, dtype=torch.float64).flatten().tolist()
    thresholds = tuple(None if math.isnan(value) else value for value in values)
    if len(thresholds) != NUM_LABELS or not all(t is None or 0.0 <= t <= 1.0 for t in thresholds):
        raise WeightsFileError(
            f"{weights}: op_threshs must hold {NUM_LABELS} probabilities in [0, 1] or NaN, got {len(values)} values"
        )
    return thresholds


class StandInModule(nn.Module):
    """Takes the place of a torchxrayvision or torchvision class while unpickling; keeps its weights."""


class _StandInUnpickler(pickle.Unpickler):
    """Unpickler that resolves classes of the two libraries above to StandInModule when not installed."""

    def find_class(self, module: str, name: str) -> Any:
        """module.name as usual; StandInModule for a torchxrayvision or torchvision name not importable."""
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if module.split(".")[0] in ("torchxrayvision", "torchvision"):
                return StandInModule
            raise


# torch.load takes a pickle *module*; this one is the standard module with the Unpickler above.
_STAND_IN_PICKLE = types.ModuleType("hilum_stand_in_pickle")
_STAND_IN_PICKLE.__dict__.update(pickle.__dict__)
_STAND_IN_PICKLE.__dict__["Unpickler"] = _StandInUnpickler
