"""Chest pictures: 12-bit, chest-like (air darker than lungs, lungs darker than mediastinum), seeded."""

from __future__ import annotations

import numpy as np
import pytest

from hilum.samples.chest_pixels import BITS_STORED, chest_pixels
from hilum.samples.chest_views import ViewPosition
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy

ROWS, COLUMNS = 256, 200


@pytest.mark.parametrize("spec", SAMPLE_STUDIES, ids=[spec.label for spec in SAMPLE_STUDIES])
def test_pixels_are_12_bit_and_chest_like(spec: SyntheticStudy) -> None:
    pixels = chest_pixels(ROWS, COLUMNS, spec.view_position, spec.seed)
    assert pixels.shape == (ROWS, COLUMNS)
    assert pixels.dtype == np.uint16
    assert int(pixels.max()) <= (1 << BITS_STORED) - 1 == 4095
    assert int(pixels.max()) - int(pixels.min()) > 2000
    # Lungs are darker than the mediastinum between them; air outside the body is darkest.
    row, middle, side = int(ROWS * 0.4), COLUMNS // 2, int(ROWS * 0.15)
    lung = pixels[row - 5 : row + 5, middle + side - 5 : middle + side + 5].mean()
    mediastinum = pixels[row - 5 : row + 5, middle - 5 : middle + 5].mean()
    air = pixels[row - 5 : row + 5, :4].mean()
    assert air < lung < mediastinum


def test_lateral_has_air_in_front_and_behind_and_a_denser_body() -> None:
    pixels = chest_pixels(ROWS, COLUMNS, ViewPosition.LL, seed=5)
    row = int(ROWS * 0.6)
    body = pixels[row - 5 : row + 5, COLUMNS // 2 - 5 : COLUMNS // 2 + 5].mean()
    assert pixels[row, :4].mean() < body and pixels[row, -4:].mean() < body


def test_pixels_depend_on_seed_only() -> None:
    first = chest_pixels(ROWS, COLUMNS, ViewPosition.PA, seed=7)
    np.testing.assert_array_equal(first, chest_pixels(ROWS, COLUMNS, ViewPosition.PA, seed=7))
    assert not np.array_equal(first, chest_pixels(ROWS, COLUMNS, ViewPosition.PA, seed=8))


def test_row_count_need_not_fill_the_last_strip() -> None:
    pixels = chest_pixels(70, 50, ViewPosition.AP, seed=3)  # drawn in strips of 32 rows
    assert pixels.shape == (70, 50)
    assert int(pixels[64:].max()) > 0
