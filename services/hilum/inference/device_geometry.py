"""Millimetres from landmark pixels: the pixel spacing a radiograph's header supports, and distances with it.

The devices model gives landmarks (device tips, the carina, …) in pixels of the original image; a distance in
millimetres needs the spacing of those pixels in the patient. DICOM offers three attributes for that (PS3.3
10.7.1 and the DX and CR modules):

- Imager Pixel Spacing (0018,1164): at the front plane of the detector, never corrected for magnification;
- Pixel Spacing (0028,0030): in the patient. When the image was not corrected it equals Imager Pixel Spacing;
  when it differs, it has been corrected for geometric magnification or calibrated against an object of known
  size; Pixel Spacing Calibration Type (0028,0A02) says which (GEOMETRY or FIDUCIAL);
- Estimated Radiographic Magnification Factor (0018,1114): source-to-detector over source-to-patient distance,
  by which Imager Pixel Spacing is divided to give the spacing at the patient.

Precedence, from the most to the least direct statement of the spacing in the patient (`spacing_from`):

1. Pixel Spacing that the header says is calibrated: Calibration Type GEOMETRY or FIDUCIAL;
2. Pixel Spacing that differs from Imager Pixel Spacing: by PS3.3 10.7.1.1 it has been corrected or
   calibrated, and the equipment that did so knew the geometry better than any estimate here;
3. Imager Pixel Spacing divided by the Estimated Radiographic Magnification Factor;
4. Imager Pixel Spacing alone: at the detector, so distances overstate those in the patient by the
   magnification (Pixel Spacing equal to it, or absent, adds nothing);
5. Pixel Spacing alone, with neither Imager Pixel Spacing nor a Calibration Type: PS3.3 says it then cannot be
   told whether it was corrected, and the source says so.

A value that is not finite, not positive or outside the plausible range is ignored as if absent; with no usable
spacing a distance is "not measurable", never a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydicom.dataset import Dataset

from hilum.common.dicom.attributes import floats, text

# Chest radiograph detectors sample at about 0.1-0.2 mm; scanned films and downsampled copies are coarser.
# Anything outside this range is a broken header, not a radiograph.
MIN_SPACING_MM = 0.02
MAX_SPACING_MM = 2.0
# The magnification factor is source-to-detector over source-to-patient distance, so at least 1 by geometry;
# a chest radiograph is about 1.05-1.3, and even magnification radiography stays below 2.
MIN_MAGNIFICATION = 1.0
MAX_MAGNIFICATION = 2.0
# Pixel Spacing counts as "equal" to Imager Pixel Spacing within this relative tolerance: DS strings are
# rounded by their writers, while a magnification correction changes the value by a few per cent at least.
_SAME_SPACING_TOLERANCE = 1e-3
_CALIBRATION_TYPES = ("GEOMETRY", "FIDUCIAL")

NOT_MEASURABLE = "distance not measurable"
_NO_SPACING = "the image header gives no usable pixel spacing"


class SpacingSource(StrEnum):
    """Which header attributes a Spacing was taken from (see the module docstring for the precedence)."""

    PIXEL_SPACING_GEOMETRY = "pixel_spacing_geometry"
    PIXEL_SPACING_FIDUCIAL = "pixel_spacing_fiducial"
    PIXEL_SPACING_CALIBRATED = "pixel_spacing_calibrated"  # differs from Imager Pixel Spacing, method unnamed
    IMAGER_PIXEL_SPACING_CORRECTED = "imager_pixel_spacing_corrected_by_magnification"
    IMAGER_PIXEL_SPACING_UNCORRECTED = "imager_pixel_spacing_uncorrected"
    PIXEL_SPACING_UNKNOWN_CALIBRATION = "pixel_spacing_calibration_unknown"


@dataclass(frozen=True)
class Spacing:
    """The spacing of image pixels, in mm: row_mm between adjacent rows (vertical), column_mm between adjacent
    columns (horizontal), as DICOM orders them. magnification_factor: the factor Imager Pixel Spacing was divided
    by (IMAGER_PIXEL_SPACING_CORRECTED only), else None.
    """

    row_mm: float
    column_mm: float
    source: SpacingSource
    magnification_factor: float | None = None

    def describe(self) -> str:
        """How distances were measured, as a clause for a report, e.g. "measured with Imager Pixel Spacing
        corrected by the Estimated Radiographic Magnification Factor 1.1"."""
        match self.source:
            case SpacingSource.PIXEL_SPACING_GEOMETRY:
                return (
                    "measured with Pixel Spacing, which the equipment corrected for geometric magnification "
                    "(Pixel Spacing Calibration Type GEOMETRY)"
                )
            case SpacingSource.PIXEL_SPACING_FIDUCIAL:
                return (
                    "measured with Pixel Spacing, calibrated against an object of known size "
                    "(Pixel Spacing Calibration Type FIDUCIAL)"
                )
            case SpacingSource.PIXEL_SPACING_CALIBRATED:
                return (
                    "measured with Pixel Spacing, which differs from Imager Pixel Spacing and so was corrected "
                    "or calibrated to the patient by a method the header does not name"
                )
            case SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED:
                return (
                    "measured with Imager Pixel Spacing corrected by the Estimated Radiographic Magnification "
                    f"Factor {self.magnification_factor:g}"
                )
            case SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED:
                return (
                    "measured with Imager Pixel Spacing at the detector, not corrected for magnification, "
                    "so distances overstate those in the patient"
                )
            case SpacingSource.PIXEL_SPACING_UNKNOWN_CALIBRATION:
                return (
                    "measured with Pixel Spacing whose calibration the header does not state; if it is the "
                    "spacing at the detector, distances overstate those in the patient"
                )


def spacing_from(
    imager_pixel_spacing: Sequence[float] | None,
    pixel_spacing: Sequence[float] | None,
    magnification_factor: float | None,
    calibration_type: str | None,
) -> Spacing | None:
    """The spacing in the patient that these header values support, by the precedence in the module docstring;
    None when none is usable (distances are then not measurable).

    imager_pixel_spacing, pixel_spacing: (row, column) in mm, as in the header; calibration_type: Pixel Spacing
    Calibration Type as sent. Implausible values are ignored as if absent; nothing here raises.
    """
    imager = _usable_pair(imager_pixel_spacing)
    patient = _usable_pair(pixel_spacing)
    factor = _usable_factor(magnification_factor)
    declared = (calibration_type or "").strip().upper()
    if patient is not None and declared in _CALIBRATION_TYPES:
        geometry = declared == "GEOMETRY"
        source = SpacingSource.PIXEL_SPACING_GEOMETRY if geometry else SpacingSource.PIXEL_SPACING_FIDUCIAL
        return Spacing(patient[0], patient[1], source)
    if patient is not None and imager is not None and not _same(patient, imager):
        return Spacing(patient[0], patient[1], SpacingSource.PIXEL_SPACING_CALIBRATED)
    if imager is not None and factor is not None:
        return Spacing(imager[0] / factor, imager[1] / factor, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, factor)
    if imager is not None:
        return Spacing(imager[0], imager[1], SpacingSource.IMAGER_PIXEL_SPACING_UNCORRECTED)
    if patient is not None:
        return Spacing(patient[0], patient[1], SpacingSource.PIXEL_SPACING_UNKNOWN_CALIBRATION)
    return None


def spacing_of(ds: Dataset) -> Spacing | None:
    """spacing_from with the four attributes read from a dataset; absent or malformed values count as absent,
    and nothing here raises."""
    factors = floats(ds, "EstimatedRadiographicMagnificationFactor")
    return spacing_from(
        imager_pixel_spacing=floats(ds, "ImagerPixelSpacing"),
        pixel_spacing=floats(ds, "PixelSpacing"),
        magnification_factor=factors[0] if len(factors) == 1 else None,
        calibration_type=text(ds, "PixelSpacingCalibrationType"),
    )


def _usable_pair(values: Sequence[float] | None) -> tuple[float, float] | None:
    """(row, column) when values are exactly two plausible spacings in mm, else None."""
    if values is None or len(values) != 2:
        return None
    row, column = values
    plausible = _plausible(row, MIN_SPACING_MM, MAX_SPACING_MM) and _plausible(column, MIN_SPACING_MM, MAX_SPACING_MM)
    return (row, column) if plausible else None


def _usable_factor(value: float | None) -> float | None:
    """A plausible Estimated Radiographic Magnification Factor, else None."""
    return value if value is not None and _plausible(value, MIN_MAGNIFICATION, MAX_MAGNIFICATION) else None


def _plausible(value: float, low: float, high: float) -> bool:
    """Whether value is a finite number in [low, high]."""
    return isinstance(value, int | float) and math.isfinite(value) and low <= value <= high


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (row, column) spacings are the same value as written in a header."""
    return all(math.isclose(x, y, rel_tol=_SAME_SPACING_TOLERANCE) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Landmark:
    """A point the landmark model found: row and column in pixels of the original image (rows increase
    towards the patient's feet on an upright display), confidence in [0, 1]."""

    row: float
    column: float
    confidence: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.row) and math.isfinite(self.column)):
            raise ValueError("A landmark's row and column must be finite numbers")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError("A landmark's confidence must lie in [0, 1]")


@dataclass(frozen=True)
class Measurement:
    """A distance in mm with how it was measured, or None with why it could not be.

    value_mm: None when not measurable, never a guessed number. note: Spacing.describe() when measured;
    "distance not measurable: <why>" otherwise.
    """

    value_mm: float | None
    note: str

    @property
    def measurable(self) -> bool:
        """Whether the distance was measured."""
        return self.value_mm is not None

    def describe(self) -> str:
        """The measurement for a report: "42.0 mm, measured with …", or the reason it is not measurable."""
        return self.note if self.value_mm is None else f"{self.value_mm:.1f} mm, {self.note}"


def not_measurable(why: str) -> Measurement:
    """A Measurement without a value: "distance not measurable: <why>"."""
    return Measurement(None, f"{NOT_MEASURABLE}: {why}")


def distance_mm(a: Landmark, b: Landmark, spacing: Spacing | None) -> Measurement:
    """The straight-line distance between two landmarks in mm, each axis scaled by its own spacing."""
    if spacing is None:
        return not_measurable(_NO_SPACING)
    rows = (a.row - b.row) * spacing.row_mm
    columns = (a.column - b.column) * spacing.column_mm
    return Measurement(math.hypot(rows, columns), spacing.describe())


def height_above_mm(point: Landmark, reference: Landmark, spacing: Spacing | None) -> Measurement:
    """How far point lies above reference along the image's vertical (craniocaudal) axis, in mm: positive above,
    negative below, 0 level; the horizontal offset is ignored. Assumes rows increase towards the feet, as a
    chest radiograph is displayed (Patient Orientation's column direction F).
    """
    if spacing is None:
        return not_measurable(_NO_SPACING)
    return Measurement((reference.row - point.row) * spacing.row_mm, spacing.describe())
