"""The cxr_devices landmark model, written in plain torch: a compact residual encoder with a feature-pyramid
decoder that gives one heatmap per landmark (device tips and the anatomy they are judged against).

Input: float32 (N, 1, 512, 512), the whole radiograph resized (not cropped), values in [-1024, 1024].
Output: float32 (N, K, 128, 128), per-landmark sigmoid probabilities at stride 4, K = len(LANDMARKS) in that order.
No trained weights are published: demo_model gives seeded weights calibrated to find nothing, and
published_landmark_model loads a hospital's trained state_dict in this module's parameter layout.
This module imports torch: only the model-building code may import it, never a running service.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from hilum.inference.densenet import WeightsFileError, set_batch_norm_statistics

# Output order of the heatmaps; model_repository/cxr_devices/landmarks.json lists the same codes in the same order.
LANDMARKS = (
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
INPUT_SIZE = 512
HEATMAP_STRIDE = 4
HEATMAP_SIZE = INPUT_SIZE // HEATMAP_STRIDE
STEM_CHANNELS = (16, 32)  # two stride-2 convolutions: 512 -> 256 -> 128
STAGE_CHANNELS = (32, 64, 128, 256)  # encoder stages at strides 4, 8, 16 and 32
DECODER_CHANNELS = 32
# Pixel noise on the smooth calibration images (see calibration_images), in the [-1024, 1024] input units.
CALIBRATION_NOISE = 64.0
# A demo never cries wolf: on the calibration images every heatmap is about DEMO_PROBABILITY and its brightest pixel
# scores DEMO_CEILING, fifty times below device_placement.DEFAULT_MIN_CONFIDENCE (0.5), yet the maps differ by image.
DEMO_PROBABILITY = 0.001
DEMO_CEILING = 0.01


class LandmarkWeightsError(WeightsFileError):
    """An operator-supplied weights file is not a LandmarkNet state_dict (wrong format, keys or shapes)."""


class ConvNormRelu(nn.Sequential):
    """3x3 convolution (stride 1 or 2, no bias), batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False))
        self.add_module("norm", nn.BatchNorm2d(out_channels))
        self.add_module("relu", nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm added to the input, then ReLU: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvNormRelu(channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (N, C, H, W) -> (N, C, H, W)."""
        return functional.relu(features + self.norm2(self.conv2(self.conv1(features))))


class EncoderStage(nn.Sequential):
    """A stride-2 convolution to out_channels, then one residual block: halves the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.add_module("down", ConvNormRelu(in_channels, out_channels, stride=2))
        self.add_module("block", ResidualBlock(out_channels))


class LandmarkNet(nn.Module):
    """Residual encoder (strides 4 to 32) and a top-down feature-pyramid decoder back to stride 4, with a 1x1 head
    of one sigmoid heatmap per landmark.

    Input: float32 (N, 1, 512, 512), values in [-1024, 1024]. Output: float32 (N, len(LANDMARKS), 128, 128) in [0, 1].
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvNormRelu(1, STEM_CHANNELS[0], stride=2))
        self.stem.add_module("conv2", ConvNormRelu(STEM_CHANNELS[0], STEM_CHANNELS[1], stride=2))
        self.stage1 = ResidualBlock(STAGE_CHANNELS[0])
        self.stage2 = EncoderStage(STAGE_CHANNELS[0], STAGE_CHANNELS[1])
        self.stage3 = EncoderStage(STAGE_CHANNELS[1], STAGE_CHANNELS[2])
        self.stage4 = EncoderStage(STAGE_CHANNELS[2], STAGE_CHANNELS[3])
        # 1x1 projections of each stage to the decoder width, summed top-down (coarse maps upsampled 2x).
        self.lateral = nn.ModuleList(nn.Conv2d(channels, DECODER_CHANNELS, 1) for channels in STAGE_CHANNELS)
        self.refine = ConvNormRelu(DECODER_CHANNELS, DECODER_CHANNELS)
        self.head = nn.Conv2d(DECODER_CHANNELS, len(LANDMARKS), 1)
        self._initialise()

    def _initialise(self) -> None:
        """He-normal 3x3 and lateral convolutions, unit batch-norm scale, zero biases (the head keeps torch's)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.head:
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0.0)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1.0)
                nn.init.constant_(module.bias, 0.0)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """image: float32 (N, 1, 512, 512) in [-1024, 1024] -> heatmap logits float32 (N, K, 128, 128)."""
        stride4 = self.stage1(self.stem(image))
        stride8 = self.stage2(stride4)
        stride16 = self.stage3(stride8)
        stride32 = self.stage4(stride16)
        decoded = self.lateral[3](stride32)
        for lateral, features in zip(self.lateral[2::-1], (stride16, stride8, stride4), strict=True):
            decoded = lateral(features) + functional.interpolate(decoded, scale_factor=2.0, mode="nearest")
        out: torch.Tensor = self.head(self.refine(decoded))
        return out

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: float32 (N, 1, 512, 512) in [-1024, 1024] -> heatmaps float32 (N, K, 128, 128) in [0, 1]."""
        return torch.sigmoid(self.logits(image))


def calibration_images(seed: int) -> torch.Tensor:
    """The demo's calibration inputs, float32 (4, 1, 512, 512) in [-1024, 1024], drawn after torch.manual_seed(seed):
    two smooth radiograph-like images with mild pixel noise, a plaid of full-contrast bars of random widths (edges
    and lines, like tubes and ribs) and full-contrast random pixels (the largest pixel-to-pixel contrast possible).
    """
    torch.manual_seed(seed)
    coarse = torch.rand(2, 1, 8, 8)
    smooth = functional.interpolate(coarse, size=INPUT_SIZE, mode="bilinear") * 2048.0 - 1024.0
    smooth = smooth + CALIBRATION_NOISE * torch.randn(2, 1, INPUT_SIZE, INPUT_SIZE)
    rows, columns = (_random_bars() for _ in range(2))
    plaid = (rows[:, None] ^ columns[None, :]).float() * 2048.0 - 1024.0
    pixels = torch.randint(0, 2, (1, 1, INPUT_SIZE, INPUT_SIZE)).float() * 2048.0 - 1024.0
    return torch.cat([smooth.clamp(-1024.0, 1024.0), plaid[None, None], pixels])


def _random_bars() -> torch.Tensor:
    """int64 (512,) of alternating runs of 0s and 1s, each run 1 to 15 pixels long."""
    widths = torch.randint(1, 16, (INPUT_SIZE,))
    return torch.repeat_interleave(torch.arange(INPUT_SIZE) % 2, widths)[:INPUT_SIZE]


def demo_model(seed: int) -> LandmarkNet:
    """Seeded random LandmarkNet in eval mode, batch-norm statistics set from calibration_images, and a head
    calibrated to find no landmark: on those images each heatmap is about DEMO_PROBABILITY and peaks at DEMO_CEILING.

    Without calibrated statistics, inputs in [-1024, 1024] drive almost every heatmap pixel to exactly 0 or 1; with
    them the demo heatmaps stay image-dependent while their maximum stays far below any detection level.
    """
    torch.manual_seed(seed)
    model = LandmarkNet()
    images = calibration_images(seed + 1)
    set_batch_norm_statistics(model, images)
    _calibrate_head(model, images)
    return model


def _calibrate_head(model: LandmarkNet, images: torch.Tensor) -> None:
    """Scale and shift the head so that, per landmark over all pixels of images, the mean logit is
    logit(DEMO_PROBABILITY) and the largest is logit(DEMO_CEILING)."""
    with torch.no_grad():
        logits = model.logits(images).transpose(0, 1).flatten(1)  # (K, N * 128 * 128)
        mean = logits.mean(dim=1)
        floor, ceiling = torch.logit(torch.tensor([DEMO_PROBABILITY, DEMO_CEILING]))
        scale = (ceiling - floor) / (logits.amax(dim=1) - mean).clamp_min(1e-6)
        model.head.weight.mul_(scale[:, None, None, None])
        bias = model.head.bias
        assert bias is not None  # LandmarkNet builds its head with a bias
        bias.copy_((bias - mean) * scale + floor)


def published_landmark_model(weights: Path) -> LandmarkNet:
    """LandmarkNet in eval mode with trained weights from an operator-supplied state_dict file (torch.save of
    model.state_dict(), keys as LandmarkNet().state_dict(), an optional "module." prefix allowed); nothing is
    downloaded. Raises LandmarkWeightsError when the file is not such a state_dict or a key or shape differs.
    """
    try:
        loaded: Any = torch.load(weights, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        # A pickled module would run arbitrary code on load; a plain state_dict is all this model needs.
        raise LandmarkWeightsError(
            f"{weights}: not a plain torch state_dict (save model.state_dict() with torch.save): {exc}"
        ) from exc
    if not isinstance(loaded, Mapping):
        raise LandmarkWeightsError(f"{weights}: holds a {type(loaded).__name__}, not a state_dict")
    state = {str(key).removeprefix("module."): value for key, value in loaded.items()}
    model = LandmarkNet()
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise LandmarkWeightsError(
            f"{weights}: not a cxr_devices LandmarkNet state_dict "
            f"(missing keys {missing[:3]}, unexpected keys {unexpected[:3]})"
        )
    wrong = sorted(
        key for key, value in state.items() if not isinstance(value, torch.Tensor) or value.shape != expected[key].shape
    )
    if wrong:
        raise LandmarkWeightsError(
            f"{weights}: not a cxr_devices LandmarkNet state_dict (wrong shapes for keys {wrong[:3]})"
        )
    model.load_state_dict(state)
    return model.eval()
