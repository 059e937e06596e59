"""Device geometry: pixel spacing from header values by the documented precedence, and distances in mm with it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from io import BytesIO

import pydicom
import pytest
from pydicom.dataset import Dataset

from hilum.inference.device_geometry import (
    NOT_MEASURABLE,
    Landmark,
    Measurement,
    Spacing,
    SpacingSource,
    distance_mm,
    height_above_mm,
    spacing_from,
    spacing_of,
)

# pydicom warns about the values these tests make malformed on purpose.
PYDICOM_COMPLAINS = pytest.mark.filterwarnings(
    "ignore:Invalid value for VR", "ignore:Value .* is not valid", "ignore:The value length"
)


def pixels_of(patient_mm: tuple[float, float], detector_spacing: tuple[float, float], magnification: float) -> Landmark:
    """The landmark a model would report, to the nearest whole pixel, for a point at patient_mm (row, column)
    in the patient plane, imaged onto a detector with this spacing at this magnification."""
    row = round(patient_mm[0] * magnification / detector_spacing[0])
    column = round(patient_mm[1] * magnification / detector_spacing[1])
    return Landmark(float(row), float(column), 0.9)


SPACINGS = [(0.1, 0.1), (0.139, 0.139), (0.2, 0.2), (0.15, 0.1), (0.1, 0.175)]
MAGNIFICATIONS = [1.0, 1.1, 1.25]


@pytest.mark.parametrize("detector_spacing", SPACINGS)
@pytest.mark.parametrize("magnification", MAGNIFICATIONS)
def test_tip_to_carina_distance_is_within_half_a_millimetre(
    detector_spacing: tuple[float, float], magnification: float
) -> None:
    # A tip 47.3 mm above and 6.2 mm to one side of the carina, in the patient.
    carina_mm, tip_mm = (180.0, 140.0), (132.7, 146.2)
    carina = pixels_of(carina_mm, detector_spacing, magnification)
    tip = pixels_of(tip_mm, detector_spacing, magnification)
    spacing = spacing_from(detector_spacing, None, magnification, None)
    assert spacing is not None and spacing.source is SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED

    straight, height = distance_mm(tip, carina, spacing), height_above_mm(tip, carina, spacing)
    assert straight.value_mm is not None and height.value_mm is not None
    assert abs(straight.value_mm - math.hypot(47.3, 6.2)) <= 0.5
    assert abs(height.value_mm - 47.3) <= 0.5


def test_without_the_magnification_factor_distances_are_at_the_detector() -> None:
    carina, tip = pixels_of((180.0, 140.0), (0.139, 0.139), 1.1), pixels_of((130.0, 140.0), (0.139, 0.139), 1.1)
    spacing = spacing_from((0.139, 0.139), None, None, None)
    assert spacing is not None and spacing.source is SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED
    height = height_above_mm(tip, carina, spacing).value_mm
    assert height is not None and abs(height - 55.0) <= 0.5  # 50 mm in the patient, magnified by 1.1


def test_anisotropic_spacing_scales_each_axis_by_its_own_value() -> None:
    spacing = Spacing(0.2, 0.1, SpacingSource.PIXEL_SPACING_GEOMETRY)
    a, b = Landmark(100.0, 100.0, 1.0), Landmark(103.0, 104.0, 1.0)
    assert distance_mm(a, b, spacing).value_mm == pytest.approx(math.hypot(3 * 0.2, 4 * 0.1))
    # Height uses rows only: 10 rows and 100 columns apart is 2 mm of height.
    assert height_above_mm(Landmark(90.0, 0.0, 1.0), Landmark(100.0, 100.0, 1.0), spacing).value_mm == pytest.approx(
        2.0
    )


def test_height_is_positive_above_negative_below_and_zero_level() -> None:
    spacing = Spacing(0.5, 0.5, SpacingSource.PIXEL_SPACING_GEOMETRY)
    reference = Landmark(200.0, 50.0, 1.0)
    assert height_above_mm(Landmark(100.0, 50.0, 1.0), reference, spacing).value_mm == pytest.approx(50.0)
    assert height_above_mm(Landmark(260.0, 10.0, 1.0), reference, spacing).value_mm == pytest.approx(-30.0)
    assert height_above_mm(Landmark(200.0, 90.0, 1.0), reference, spacing).value_mm == 0.0


def test_without_spacing_a_distance_is_not_measurable_never_a_number() -> None:
    a, b = Landmark(10.0, 10.0, 1.0), Landmark(500.0, 40.0, 1.0)
    for measurement in (distance_mm(a, b, None), height_above_mm(a, b, None)):
        assert measurement.value_mm is None and not measurement.measurable
        assert measurement.note.startswith(f"{NOT_MEASURABLE}: ")
        assert measurement.describe() == measurement.note
        assert not any(character.isdigit() for character in measurement.describe())


def test_a_measurement_describes_its_value_and_how_it_was_measured() -> None:
    spacing = Spacing(0.125, 0.125, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, 1.1)
    measurement = height_above_mm(Landmark(0.0, 0.0, 1.0), Landmark(336.0, 0.0, 1.0), spacing)
    assert measurement == Measurement(42.0, spacing.describe())
    assert measurement.measurable
    assert measurement.describe() == (
        "42.0 mm, measured with Imager Pixel Spacing corrected by the Estimated Radiographic Magnification Factor 1.1"
    )


@pytest.mark.parametrize(
    "bad",
    [
        None,
        (),
        (0.139,),
        (0.139, 0.139, 0.139),
        (0.0, 0.139),
        (0.139, -0.139),
        (math.nan, 0.139),
        (0.139, math.inf),
        (0.001, 0.001),  # finer than any detector
        (5.0, 5.0),  # coarser than any radiograph
    ],
)
def test_unusable_spacing_is_ignored_so_nothing_is_measurable(bad: Sequence[float] | None) -> None:
    assert spacing_from(bad, None, None, None) is None
    assert spacing_from(None, bad, None, "GEOMETRY") is None
    assert spacing_from(bad, bad, 1.1, "FIDUCIAL") is None


def test_the_plausible_range_is_inclusive() -> None:
    assert spacing_from((0.02, 2.0), None, None, None) is not None
    assert spacing_from((0.0199, 0.1), None, None, None) is None
    assert spacing_from((0.1, 2.001), None, None, None) is None


@pytest.mark.parametrize("factor", [0.0, -1.1, 0.9, 2.5, math.nan, math.inf])
def test_an_implausible_magnification_factor_is_ignored(factor: float) -> None:
    assert spacing_from((0.139, 0.139), None, factor, None) == Spacing(
        0.139, 0.139, SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED
    )


def test_the_magnification_range_is_inclusive() -> None:
    for factor in (1.0, 2.0):
        spacing = spacing_from((0.2, 0.2), None, factor, None)
        assert spacing == Spacing(0.2 / factor, 0.2 / factor, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, factor)


def test_declared_calibration_comes_first() -> None:
    # Pixel Spacing with a Calibration Type wins over Imager Pixel Spacing and its magnification factor.
    assert spacing_from((0.139, 0.139), (0.12, 0.12), 1.1, "GEOMETRY") == Spacing(
        0.12, 0.12, SpacingSource.PIXEL_SPACING_GEOMETRY
    )
    assert spacing_from((0.139, 0.139), (0.125, 0.124), 1.1, " fiducial ") == Spacing(
        0.125, 0.124, SpacingSource.PIXEL_SPACING_FIDUCIAL
    )
    # Declared calibration holds even when the value equals Imager Pixel Spacing, or stands alone.
    assert spacing_from((0.139, 0.139), (0.139, 0.139), 1.1, "GEOMETRY") == Spacing(
        0.139, 0.139, SpacingSource.PIXEL_SPACING_GEOMETRY
    )
    assert spacing_from(None, (0.16, 0.16), None, "GEOMETRY") == Spacing(
        0.16, 0.16, SpacingSource.PIXEL_SPACING_GEOMETRY
    )


def test_pixel_spacing_that_differs_from_the_imager_spacing_has_been_calibrated() -> None:
    expected = Spacing(0.1264, 0.1264, SpacingSource.PIXEL_SPACING_CALIBRATED)
    assert spacing_from((0.139, 0.139), (0.1264, 0.1264), 1.25, None) == expected
    assert spacing_from((0.139, 0.139), (0.1264, 0.1264), None, "UNHEARD-OF") == expected


def test_pixel_spacing_equal_to_the_imager_spacing_is_at_the_detector() -> None:
    # Equal as written (a writer's rounding aside): PS3.3 10.7.1.1 says such Pixel Spacing was not corrected.
    spacing = spacing_from((0.139, 0.139), (0.13900001, 0.139), 1.1, None)
    assert spacing == Spacing(0.139 / 1.1, 0.139 / 1.1, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, 1.1)
    assert spacing_from((0.139, 0.139), (0.139, 0.139), None, None) == Spacing(
        0.139, 0.139, SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED
    )


def test_pixel_spacing_alone_has_unknown_calibration_and_no_magnification_applied() -> None:
    # The magnification factor corrects Imager Pixel Spacing only; Pixel Spacing is already in the patient plane.
    assert spacing_from(None, (0.143, 0.143), 1.1, None) == Spacing(
        0.143, 0.143, SpacingSource.PIXEL_SPACING_UNKNOWN_CALIBRATION
    )


def test_unusable_pixel_spacing_falls_back_to_the_imager_spacing() -> None:
    assert spacing_from((0.2, 0.2), (0.0, 0.0), 1.25, "GEOMETRY") == Spacing(
        0.16, 0.16, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, 1.25
    )
    assert spacing_from(None, None, 1.1, "GEOMETRY") is None


def test_every_source_has_its_own_sentence() -> None:
    sentences = {Spacing(0.1, 0.1, source, 1.1).describe() for source in SpacingSource}
    assert len(sentences) == len(SpacingSource)
    assert all(sentence.startswith("measured with ") for sentence in sentences)
    assert Spacing(0.1, 0.1, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, 1.25).describe().endswith("Factor 1.25")
    assert "not corrected" in Spacing(0.1, 0.1, SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED).describe()


def test_landmarks_must_be_finite_with_a_confidence_in_range() -> None:
    with pytest.raises(ValueError, match="finite"):
        Landmark(math.nan, 10.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        Landmark(10.0, math.inf, 0.5)
    with pytest.raises(ValueError, match="confidence"):
        Landmark(10.0, 10.0, 1.5)
    assert Landmark(10.0, 10.0, 0.0).confidence == 0.0


def test_spacing_of_reads_a_dataset() -> None:
    ds = Dataset()
    ds.ImagerPixelSpacing = [0.139, 0.139]
    ds.EstimatedRadiographicMagnificationFactor = "1.1"
    assert spacing_of(ds) == Spacing(0.139 / 1.1, 0.139 / 1.1, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, 1.1)

    ds.PixelSpacing = [0.125, 0.125]
    ds.PixelSpacingCalibrationType = "FIDUCIAL"
    assert spacing_of(ds) == Spacing(0.125, 0.125, SpacingSource.PIXEL_SPACING_FIDUCIAL)

    assert spacing_of(Dataset()) is None


def element(group: int, number: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element, its value padded with a space to an even length."""
    if len(value) % 2:
        value += b" "
    return group.to_bytes(2, "little") + number.to_bytes(2, "little") + vr + len(value).to_bytes(2, "little") + value


def read(*elements: bytes) -> Dataset:
    """A dataset parsed from raw elements, as a faulty modality might send them."""
    return pydicom.dcmread(BytesIO(b"".join(elements)), force=True)


@PYDICOM_COMPLAINS
def test_spacing_of_never_raises_on_malformed_values() -> None:
    malformed_factor = element(0x0018, 0x1114, b"DS", b"1.1.1")
    malformed_imager = element(0x0018, 0x1164, b"DS", b"ab\\c")
    imager = element(0x0018, 0x1164, b"DS", b"0.2\\0.2")
    malformed_pixel = element(0x0028, 0x0030, b"DS", b"0.1\\x")
    geometry = element(0x0028, 0x0A02, b"CS", b"GEOMETRY")

    assert spacing_of(read(malformed_factor, malformed_imager, malformed_pixel, geometry)) is None
    assert spacing_of(read(malformed_factor, imager, malformed_pixel, geometry)) == Spacing(
        0.2, 0.2, SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED
    )
    two_factors = element(0x0018, 0x1114, b"DS", b"1.1\\1.2")
    assert spacing_of(read(two_factors, imager)) == Spacing(0.2, 0.2, SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED)
    undecodable_factor = b"\x18\x00\x14\x11US\x03\x00abc"  # three bytes of a two-byte VR: pydicom raises
    assert spacing_of(read(undecodable_factor, imager)) == Spacing(
        0.2, 0.2, SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED
    )
    factor = element(0x0018, 0x1114, b"DS", b"1.25")
    assert spacing_of(read(factor, imager, malformed_pixel, geometry)) == Spacing(
        0.16, 0.16, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, 1.25
    )
