"""DICOM decoding (MONOCHROME1, rescale, errors) and the model input: shape, scaling, crop, resize, speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hilum.inference.preprocessing import ImageUnreadable, Radiograph, read_radiograph, to_model_input
from tests.helpers import write_dicom

FULL_12_BIT = 4095


def ramp(rows: int, cols: int) -> npt.NDArray[np.uint16]:
    """Left-to-right ramp over the full 12-bit range, uint16 (rows, cols)."""
    return np.tile(np.linspace(0, FULL_12_BIT, cols).round().astype(np.uint16), (rows, 1))


def test_monochrome1_is_inverted_to_monochrome2(tmp_path: Path) -> None:
    stored = ramp(64, 64)
    plain = read_radiograph(write_dicom(tmp_path / "m2.dcm", stored))
    inverted = read_radiograph(write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1"))
    assert plain.value_range == inverted.value_range == (0.0, FULL_12_BIT)
    np.testing.assert_array_equal(inverted.pixels, FULL_12_BIT - plain.pixels)
    np.testing.assert_allclose(to_model_input(inverted), -to_model_input(plain), atol=1e-3)


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


def test_full_range_image_spans_minus_to_plus_1024(tmp_path: Path) -> None:
    image = to_model_input(read_radiograph(write_dicom(tmp_path / "ramp.dcm", ramp(224, 224))))
    assert image.min() == pytest.approx(-1024.0, abs=1e-2)
    assert image.max() == pytest.approx(1024.0, abs=1e-2)


def test_rescale_keeps_the_normalised_image(tmp_path: Path) -> None:
    stored = ramp(50, 60)
    plain = read_radiograph(write_dicom(tmp_path / "plain.dcm", stored))
    rescaled = read_radiograph(write_dicom(tmp_path / "rescaled.dcm", stored, rescale=(2.0, -100.0)))
    assert rescaled.value_range == (-100.0, 2.0 * FULL_12_BIT - 100.0)
    np.testing.assert_allclose(rescaled.pixels, 2.0 * plain.pixels - 100.0)
    np.testing.assert_allclose(to_model_input(rescaled), to_model_input(plain), atol=1e-2)


def test_output_is_float32_1x224x224_for_any_shape(tmp_path: Path) -> None:
    for rows, cols in ((300, 250), (250, 300), (100, 100), (224, 224)):
        image = to_model_input(
            read_radiograph(write_dicom(tmp_path / f"{rows}x{cols}.dcm", ramp(rows, cols)))
        )
        assert image.shape == (1, 224, 224)
        assert image.dtype == np.float32


@pytest.mark.parametrize(("rows", "cols"), [(300, 200), (200, 300)])
def test_centre_crop_keeps_the_central_square(tmp_path: Path, rows: int, cols: int) -> None:
    # Bright bands outside the central 200 x 200 square must not reach the model input.
    stored = np.full((rows, cols), FULL_12_BIT, np.uint16)
    top, left = (rows - 200) // 2, (cols - 200) // 2
    stored[top : top + 200, left : left + 200] = 0
    image = to_model_input(read_radiograph(write_dicom(tmp_path / "bands.dcm", stored)))
    np.testing.assert_allclose(image, -1024.0, atol=1e-2)


def test_resize_averages_areas() -> None:
    # A 448 x 448 checkerboard of 0 and full scale averages to mid-grey on each 2 x 2 block.
    checkerboard = (np.indices((448, 448)).sum(axis=0) % 2 * FULL_12_BIT).astype(np.float32)
    image = to_model_input(Radiograph(checkerboard, (0.0, float(FULL_12_BIT)), 12))
    np.testing.assert_allclose(image, 0.0, atol=1e-2)


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    not_dicom = tmp_path / "note.txt"
    not_dicom.write_text("not an image")
    with pytest.raises(ImageUnreadable, match="not a readable DICOM"):
        read_radiograph(not_dicom)
    colour = write_dicom(
        tmp_path / "rgb.dcm", np.zeros((8, 8, 3), np.uint8), photometric="RGB", bits_stored=8
    )
    with pytest.raises(ImageUnreadable, match="greyscale"):
        read_radiograph(colour)
