"""The model input: shape, scaling from the value range, centre crop, area resize; decoded files feed it right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hilum.common.dicom.pixels import Radiograph, read_radiograph
from hilum.common.preprocessing import (
    MODEL_INPUT_LIMIT,
    MODEL_INPUT_SIZE,
    area_average,
    to_model_input,
    whole_image_input,
)
from tests.helpers import write_dicom

FULL_12_BIT = 4095


def ramp(rows: int, cols: int) -> npt.NDArray[np.uint16]:
    """Left-to-right ramp over the full 12-bit range, uint16 (rows, cols)."""
    return np.tile(np.linspace(0, FULL_12_BIT, cols).round().astype(np.uint16), (rows, 1))


def radiograph(pixels: npt.ArrayLike, value_range: tuple[float, float] = (0.0, FULL_12_BIT)) -> Radiograph:
    return Radiograph(np.asarray(pixels, np.float32), value_range, 12)


@pytest.mark.parametrize(
    ("stored", "bits_stored", "expected"),
    [
        (0, 12, -1024.0),
        (FULL_12_BIT, 12, 1024.0),
        (255, 8, 1024.0),
        (2048, 12, 0.25),
        (255, 12, 255 / 4095 * 2048 - 1024),
    ],
)
def test_values_are_scaled_from_the_stored_bit_range(
    tmp_path: Path, stored: int, bits_stored: int, expected: float
) -> None:
    path = write_dicom(tmp_path / "flat.dcm", np.full((40, 40), stored, np.uint16), bits_stored=bits_stored)
    image = to_model_input(read_radiograph(path))
    np.testing.assert_allclose(image, expected, atol=1e-2)


def test_the_value_range_not_the_data_sets_the_scale() -> None:
    # The same pixels in a wider range sit nearer the middle of [-1024, 1024].
    narrow = to_model_input(radiograph(np.full((30, 30), 100.0), (0.0, 200.0)))
    wide = to_model_input(radiograph(np.full((30, 30), 100.0), (-200.0, 200.0)))
    np.testing.assert_allclose(narrow, 0.0, atol=1e-3)
    np.testing.assert_allclose(wide, 512.0, atol=1e-2)


def test_empty_value_range_gives_the_darkest_input() -> None:
    image = to_model_input(radiograph(np.full((30, 30), 7.0), (7.0, 7.0)))
    np.testing.assert_array_equal(image, -MODEL_INPUT_LIMIT)


def test_values_outside_the_range_are_clipped() -> None:
    image = to_model_input(radiograph(np.full((30, 30), 9000.0)))
    np.testing.assert_array_equal(image, MODEL_INPUT_LIMIT)


def test_full_range_image_spans_minus_to_plus_1024(tmp_path: Path) -> None:
    image = to_model_input(read_radiograph(write_dicom(tmp_path / "ramp.dcm", ramp(224, 224))))
    assert image.min() == pytest.approx(-1024.0, abs=1e-2)
    assert image.max() == pytest.approx(1024.0, abs=1e-2)


def test_monochrome1_gives_the_negated_input(tmp_path: Path) -> None:
    plain = to_model_input(read_radiograph(write_dicom(tmp_path / "m2.dcm", ramp(64, 64))))
    inverted = to_model_input(
        read_radiograph(write_dicom(tmp_path / "m1.dcm", ramp(64, 64), photometric="MONOCHROME1"))
    )
    np.testing.assert_allclose(inverted, -plain, atol=1e-3)


def test_rescale_keeps_the_normalised_image(tmp_path: Path) -> None:
    stored = ramp(50, 60)
    plain = to_model_input(read_radiograph(write_dicom(tmp_path / "plain.dcm", stored)))
    rescaled = to_model_input(read_radiograph(write_dicom(tmp_path / "rescaled.dcm", stored, rescale=(2.0, -100.0))))
    np.testing.assert_allclose(rescaled, plain, atol=1e-2)


def test_output_is_float32_1x224x224_for_any_shape() -> None:
    for rows, cols in ((300, 250), (250, 300), (100, 100), (224, 224), (1, 3)):
        image = to_model_input(radiograph(ramp(rows, cols)))
        assert image.shape == (1, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE)
        assert image.dtype == np.float32


@pytest.mark.parametrize(("rows", "cols"), [(300, 200), (200, 300)])
def test_centre_crop_keeps_the_central_square(rows: int, cols: int) -> None:
    # Bright bands outside the central 200 x 200 square must not reach the model input.
    stored = np.full((rows, cols), FULL_12_BIT, np.uint16)
    top, left = (rows - 200) // 2, (cols - 200) // 2
    stored[top : top + 200, left : left + 200] = 0
    np.testing.assert_allclose(to_model_input(radiograph(stored)), -1024.0, atol=1e-2)


def test_resize_averages_areas() -> None:
    # A 448 x 448 checkerboard of 0 and full scale averages to mid-grey on each 2 x 2 block.
    checkerboard = np.indices((448, 448)).sum(axis=0) % 2 * FULL_12_BIT
    np.testing.assert_allclose(to_model_input(radiograph(checkerboard)), 0.0, atol=1e-2)


def test_resize_keeps_a_ramp_in_order() -> None:
    image = to_model_input(radiograph(ramp(500, 500)))[0]
    assert (np.diff(image, axis=1) > 0).all()
    np.testing.assert_allclose(image, np.broadcast_to(image[:1], image.shape), atol=1e-3)  # rows alike


def _resampling_matrix(size_in: int, size_out: int) -> npt.NDArray[np.float64]:
    """The area-averaging matrix (size_out, size_in): the fraction of each input sample each output span covers."""
    step = size_in / size_out
    edges = np.arange(size_out + 1) * step
    pixel = np.arange(size_in)[np.newaxis, :]
    overlap = np.minimum(pixel + 1.0, edges[1:, np.newaxis]) - np.maximum(pixel, edges[:-1, np.newaxis])
    return np.clip(overlap, 0.0, None) / step


@pytest.mark.parametrize("size_in", [2000, 2500, 448, 225, 224, 100, 3, 1])
def test_area_average_is_the_resampling_matrix_product(size_in: int) -> None:
    values = np.random.default_rng(size_in).uniform(0, 4095, (size_in, 7)).astype(np.float32)
    expected = _resampling_matrix(size_in, MODEL_INPUT_SIZE) @ values.astype(np.float64)
    np.testing.assert_allclose(area_average(values, MODEL_INPUT_SIZE, axis=0), expected, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(area_average(values.T, MODEL_INPUT_SIZE, axis=1), expected.T, rtol=1e-5, atol=1e-2)


def test_the_devices_input_is_the_whole_image_area_averaged_and_scaled_alike() -> None:
    """Nothing is cropped (a tube tip near the edge stays in view), each axis has its own scale, and the values are
    scaled exactly as the findings input's are."""
    rng = np.random.default_rng(3)
    pixels = rng.uniform(0, 4095, (600, 400)).astype(np.float32)
    image = Radiograph(pixels=pixels, value_range=(0.0, 4095.0), bits_stored=12)
    whole = whole_image_input(image, 64)
    assert whole.shape == (1, 64, 64) and whole.dtype == np.float32
    expected = area_average(area_average(pixels, 64, axis=0), 64, axis=1) * (2048.0 / 4095.0) - MODEL_INPUT_LIMIT
    np.testing.assert_allclose(whole[0], expected, atol=1e-3)
    # A bright band in the rows the centre crop would cut off is still there.
    pixels[:50] = 4095.0
    banded = whole_image_input(Radiograph(pixels=pixels, value_range=(0.0, 4095.0), bits_stored=12), 64)
    assert banded[0, 0].min() > 1000
