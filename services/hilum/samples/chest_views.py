"""The chest radiograph views a synthetic study can show, and each view's acquisition geometry.

Geometry drives both the DICOM header (distances, kVp, orientation, view code) and the picture drawn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum


class ViewPosition(StrEnum):
    """DICOM View Position (0018,5101) of a chest radiograph."""

    PA = "PA"
    AP = "AP"
    LL = "LL"


@dataclass(frozen=True)
class ViewGeometry:
    """Acquisition geometry of one view: source distances (mm), tube voltage, orientation, view code."""

    description: str
    source_to_detector_mm: float
    source_to_patient_mm: float
    kvp: float
    patient_orientation: tuple[str, str]  # direction of increasing column, then of increasing row
    view_code: tuple[str, str]  # SNOMED CT code value and meaning (CID 4010, DX View)
    calibrated: bool  # whether Pixel Spacing is given, corrected for the magnification factor

    @property
    def magnification(self) -> float:
        """Radiographic magnification factor: source-to-detector over source-to-patient distance (> 1)."""
        return self.source_to_detector_mm / self.source_to_patient_mm


_PA = ViewGeometry(
    description="XR CHEST PA",
    source_to_detector_mm=1800.0,
    source_to_patient_mm=1650.0,
    kvp=125.0,
    patient_orientation=("L", "F"),
    view_code=("272479007", "postero-anterior"),
    calibrated=True,
)

VIEW_GEOMETRY: dict[ViewPosition, ViewGeometry] = {
    ViewPosition.PA: _PA,
    # A bedside film: short distance, low tube voltage, geometry too uncertain to calibrate.
    ViewPosition.AP: dataclasses.replace(
        _PA, description="XR CHEST AP PORTABLE", view_code=("399348003", "antero-posterior"),
        source_to_detector_mm=1000.0, source_to_patient_mm=820.0, kvp=90.0, calibrated=False,
    ),
    # Taken at the PA's distance and voltage, the patient's left side against the detector.
    ViewPosition.LL: dataclasses.replace(
        _PA, description="XR CHEST LATERAL", view_code=("399173006", "left lateral"),
        source_to_patient_mm=1620.0, patient_orientation=("P", "F"),
    ),
}
