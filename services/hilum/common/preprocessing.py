"""The models' input transforms (torchxrayvision conventions): a Radiograph to a 1 x N x N tensor in [-1024, 1024].

Decoding is hilum.common.dicom.pixels' job. to_model_input (cxr_findings) centre-crops to a square and
area-averages to 224 x 224; whole_image_input (cxr_devices) area-averages the whole image to 512 x 512, so that
a point of the input maps back to the original pixels by one scale per axis. numpy only. Common code, not
inference's: the ingestion door makes the inputs from its own decode (model_inputs.py), and inference from its.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from hilum.common.dicom.pixels import Radiograph

MODEL_INPUT_SIZE = 224  # the side of cxr_findings' square input
WHOLE_IMAGE_INPUT_SIZE = 512  # the side of cxr_devices' square input (whole_image_input)
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
    resized = area_average(area_average(square, MODEL_INPUT_SIZE, axis=0), MODEL_INPUT_SIZE, axis=1)
    return _scaled(resized, image.value_range)


def whole_image_input(image: Radiograph, size: int) -> npt.NDArray[np.float32]:
    """The whole image, not cropped, area-averaged to size x size (each axis by its own scale) and scaled like
    to_model_input: float32 (1, size, size) in [-1024, 1024]."""
    resized = area_average(area_average(image.pixels, size, axis=0), size, axis=1)
    return _scaled(resized, image.value_range)


def _scaled(resized: npt.NDArray[np.float32], value_range: tuple[float, float]) -> npt.NDArray[np.float32]:
    """The image's value_range (see Radiograph) mapped linearly onto [-1024, 1024], as (1, rows, cols)."""
    low, high = value_range
    scale = 2.0 * MODEL_INPUT_LIMIT / (high - low) if high > low else 0.0
    scaled = (resized - low) * scale - MODEL_INPUT_LIMIT
    np.clip(scaled, -MODEL_INPUT_LIMIT, MODEL_INPUT_LIMIT, out=scaled)
    return scaled.astype(np.float32, copy=False)[np.newaxis]


def area_average(values: npt.NDArray[np.float32], size_out: int, axis: int) -> npt.NDArray[np.float32]:
    """values (2-D) resampled along axis (0 or 1) to size_out samples by area averaging: output sample i is the mean of
    the input over its span [i, i + 1) * size_in / size_out, partly covered input samples weighted by the fraction
    covered.

    Each output sample is one dot product of its span's weights (_spans) with the input samples under it, all of the
    other axis at once: the same numbers as multiplying by the resampling matrix, whose size_in x size_out products
    are nearly all zero, with no temporary the size of the image (gathering the k-th sample of every span and summing
    took seven times as long). Along axis 1 it works on the transpose, so that each product reads whole rows.
    """
    if axis == 1:
        return np.ascontiguousarray(area_average(np.ascontiguousarray(values.T), size_out, axis=0).T)
    if axis != 0 or values.ndim != 2:
        raise ValueError(f"area_average resamples axis 0 or 1 of a 2-D array, not axis {axis} of {values.ndim}-D")
    samples = np.asarray(values, dtype=np.float32)
    averaged = np.empty((size_out, samples.shape[1]), dtype=np.float32)
    for index, (first, last, weights) in enumerate(_spans(samples.shape[0], size_out)):
        np.dot(weights, samples[first:last], out=averaged[index])
    return averaged


@functools.lru_cache(maxsize=64)
def _spans(size_in: int, size_out: int) -> tuple[tuple[int, int, npt.NDArray[np.float32]], ...]:
    """For each output sample of area_average: the first and past-the-last input samples its span touches, and their
    weights (the part of each that the span covers, over the span's length; they add up to one). Images of one
    modality come in a few sizes, so the spans of a size are worked out once."""
    edges = np.arange(size_out + 1, dtype=np.float64) * size_in / size_out  # the last edge is exactly size_in
    spans = []
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        first, last = int(np.floor(start)), min(int(np.ceil(end)), size_in)
        touched = np.arange(first, last, dtype=np.float64)
        covered = np.minimum(end, touched + 1) - np.maximum(start, touched)
        spans.append((first, last, (covered / (end - start)).astype(np.float32)))
    return tuple(spans)
