"""The models' input transforms (torchxrayvision conventions): a Radiograph to a 1 x N x N tensor in [-1024, 1024].

Decoding is hilum.common.dicom.pixels' job. to_model_input (cxr_findings) centre-crops to a square and
area-averages to 224 x 224; whole_image_input (cxr_devices) area-averages the whole image to 512 x 512, so that
a point of the input maps back to the original pixels by one scale per axis. numpy only. Common code, not
inference's: the ingestion door makes the inputs from its own decode (model_inputs.py), and inference from its.
"""

from __future__ import annotations

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
    """values resampled along axis to size_out samples by area averaging: output sample i is the mean of the input
    over its span [i, i + 1) * size_in / size_out, partly covered input samples weighted by the fraction covered.

    Each output sample sums the input samples its span covers whole, then adds the covered fraction of the sample
    at its end and takes away the uncovered part of the one at its start: the same numbers as multiplying by a
    resampling matrix, whose size_in x size_out products are nearly all zero (an output pixel covers about nine
    input pixels of a 2000-pixel side). The whole samples are summed k-th by k-th (one gather of size_out samples per
    k, a span holding at most ceil(size_in / size_out) + 1), in the order np.add.reduceat would add them, which
    loops over the spans one by one and took ten times as long.
    """
    size_in = values.shape[axis]
    edges = np.arange(size_out + 1, dtype=np.float64) * size_in / size_out  # the last edge is exactly size_in
    whole = np.floor(edges).astype(np.intp)
    shape = [1] * values.ndim
    shape[axis] = size_out
    # The sums stay in the image's float32, in place (float64 temporaries of the image's size took half the time of
    # a pass), but for upsampling: there an output's two end corrections nearly cancel, and need float64.
    dtype = np.dtype(np.float64 if size_out > size_in else np.float32)
    fraction = (edges - whole).astype(dtype)

    def at(index: npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
        taken: npt.NDArray[np.float32] = np.take(values, np.minimum(index, size_in - 1), axis=axis)
        return taken

    starts, ends = whole[:-1], whole[1:]
    counts = ends - starts  # the samples spans i covers whole: starts[i] .. ends[i] - 1 (none when upsampling)
    every_span = int(counts.min(initial=0))  # the k-th sample of every span is whole below this
    covered = at(starts) if every_span else np.zeros(
        values.shape[:axis] + (size_out,) + values.shape[axis + 1 :], dtype=dtype)
    for k in range(1 if every_span else 0, int(counts.max(initial=0))):
        taken = at(starts + k)
        if k >= every_span:
            taken *= (k < counts).reshape(shape)
        covered += taken
    covered += at(ends) * fraction[1:].reshape(shape)
    covered -= at(starts) * fraction[:-1].reshape(shape)
    covered *= dtype.type(size_out / size_in)
    averaged: npt.NDArray[np.float32] = covered.astype(np.float32, copy=False)
    return averaged
