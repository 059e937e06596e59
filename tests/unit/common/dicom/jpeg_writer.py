"""JPEG frames for the pixel decoding tests, written by the samples' minimal encoders.

lossless_jpeg: JPEG lossless, process 14, selection value 1 (ITU T.81 Annex H).
baseline_jpeg: JPEG baseline (process 1) for 8-bit images made of flat 8 x 8 blocks, decoded losslessly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hilum.samples.jpeg_encoders import dc_only_jpeg, lossless_jpeg

__all__ = ["baseline_jpeg", "lossless_jpeg"]


def baseline_jpeg(image: npt.NDArray[np.uint8]) -> bytes:
    """image: uint8 (rows, cols), both multiples of 8, each 8 x 8 block of one value."""
    assert all(side % 8 == 0 for side in image.shape), "baseline_jpeg takes whole 8 x 8 blocks only"
    return dc_only_jpeg(image.astype(np.uint16), 8)
