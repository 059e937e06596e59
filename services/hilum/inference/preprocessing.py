"""Turns a DICOM radiograph into the findings model's input tensor (torchxrayvision conventions).

read_radiograph decodes pixels into display orientation (MONOCHROME2: dense = bright); to_model_input
centre-crops to a square, area-averages to 224 x 224 and scales to [-1024, 1024]. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import InvalidDicomError

MODEL_INPUT_SIZE = 224
# torchxrayvision scales the full pixel range of an image to [-MODEL_INPUT_LIMIT, MODEL_INPUT_LIMIT].
MODEL_INPUT_LIMIT = 1024.0
GREY_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")


class ImageUnreadable(ValueError):
    """The file is not a single-channel greyscale DICOM image whose pixels Hilum can decode."""


@dataclass(frozen=True, eq=False)
class Radiograph:
    """A greyscale radiograph as displayed (MONOCHROME2: higher = brighter = denser).

    pixels: float32 (rows, cols), modality values (after Rescale Slope/Intercept), within value_range.
    value_range: (darkest, brightest) values the stored bits can express; (0, 2^BitsStored - 1)
    when the image has no rescale.
    """

    pixels: npt.NDArray[np.float32]
    value_range: tuple[float, float]
    bits_stored: int


def read_radiograph(path: Path) -> Radiograph:
    """Reads a DICOM file's first frame as a MONOCHROME2 Radiograph; raises ImageUnreadable otherwise."""
    try:
        dataset = pydicom.dcmread(path)
    except (OSError, EOFError, ValueError, InvalidDicomError) as exc:
        raise ImageUnreadable(f"{path.name}: not a readable DICOM file: {exc}") from exc
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric not in GREY_PHOTOMETRICS or int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise ImageUnreadable(f"{path.name}: expected a greyscale image, got {photometric or 'no pixels'}")
    try:
        stored = np.asarray(dataset.pixel_array)
    except (AttributeError, KeyError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise ImageUnreadable(f"{path.name}: pixel data cannot be decoded: {exc}") from exc
    if stored.ndim == 3:  # multi-frame: the first frame is the image
        stored = stored[0]
    if stored.ndim != 2 or min(stored.shape) < 1:
        raise ImageUnreadable(f"{path.name}: expected a 2-D image, got pixel shape {stored.shape}")

    bits_stored = int(dataset.get("BitsStored", 0) or dataset.get("BitsAllocated", 0))
    if not 1 <= bits_stored <= 32:
        raise ImageUnreadable(f"{path.name}: Bits Stored {bits_stored} is not usable")
    max_stored = float(2**bits_stored - 1)
    pixels = stored.astype(np.float32)
    if int(dataset.get("PixelRepresentation", 0)) == 1:
        pixels += float(2 ** (bits_stored - 1))  # two's complement: shift to [0, 2^bits - 1]
    np.clip(pixels, 0.0, max_stored, out=pixels)

    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    if (slope, intercept) != (1.0, 0.0):
        pixels *= slope
        pixels += intercept
    low, high = sorted((intercept, intercept + slope * max_stored))
    if photometric == "MONOCHROME1":
        pixels = (low + high) - pixels  # MONOCHROME1 shows low values bright; mirror within the range
    return Radiograph(
        pixels=pixels.astype(np.float32, copy=False), value_range=(low, high), bits_stored=bits_stored
    )


def to_model_input(image: Radiograph) -> npt.NDArray[np.float32]:
    """The model input for one image: float32 (1, 224, 224), values in [-1024, 1024].

    Centre crop to a square (the shorter side), area-average resize to 224 x 224, then the value
    range (0 .. 2^BitsStored - 1 without rescale) mapped linearly onto [-1024, 1024].
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
