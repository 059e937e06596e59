"""The findings model's input transform (torchxrayvision conventions): a Radiograph to a 1 x 224 x 224 tensor.

Decoding is hilum.common.dicom.pixels' job; to_model_input centre-crops to a square, area-averages to
224 x 224 and scales to [-1024, 1024]. numpy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hilum.common.dicom.pixels import Radiograph

MODEL_INPUT_SIZE = 224
# torchxrayvision scales the full pixel range of an image to [-MODEL_INPUT_LIMIT, MODEL_INPUT_LIMIT].
MODEL_INPUT_LIMIT = 1024.0


def to_model_input(image: Radiograph) -> npt.NDArray[np.float32]:
    """The model input for one image: float32 (1, 224, 224), values in [-1024, 1024].

    Centre crop to a square (the shorter side), area-average resize to 224 x 224, then the image's
    value_range (see Radiograph) mapped linearly onto [-1024, 1024]: darkest to -1024, brightest to 1024.
    """
    rows, cols = image.pixels.shape
    side = min(rows, cols)
    top, left = (rows - side) // 2, (cols - side) // 2
    square = image.pixels[top : top + side, left : left + side]
    weights = _area_weights(side, MODEL_INPUT_SIZE)
    resized = weights @ square @ weights.T
    low, high = image.value_range
    scale = 2.0 * MODEL_INPUT_LIMIT / (high - low) if high > low else 0.0
    scaled = (resized - low) * scale - MODEL_INPUT_LIMIT
    np.clip(scaled, -MODEL_INPUT_LIMIT, MODEL_INPUT_LIMIT, out=scaled)
    return scaled.astype(np.float32, copy=False)[np.newaxis]


def _area_weights(size_in: int, size_out: int) -> npt.NDArray[np.float32]:
    """Area-averaging resampling matrix float32 (size_out, size_in): row i holds the fraction of each
    input pixel covered by output pixel i, divided by the output pixel's width (rows sum to 1).
    """
    step = size_in / size_out
    edges = np.arange(size_out + 1, dtype=np.float64) * step
    starts, ends = edges[:-1, np.newaxis], edges[1:, np.newaxis]
    pixel = np.arange(size_in, dtype=np.float64)[np.newaxis, :]
    overlap = np.clip(np.minimum(pixel + 1.0, ends) - np.maximum(pixel, starts), 0.0, None)
    weights: npt.NDArray[np.float32] = (overlap / step).astype(np.float32)
    return weights
