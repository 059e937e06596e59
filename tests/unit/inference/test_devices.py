"""Device findings from the landmark model's points and the image's DICOM header: which devices are reported,
their tip distances in mm (only with a pixel spacing) and their placement calls (adults only)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom.dataset import Dataset

from hilum.inference.device_geometry import Landmark
from hilum.inference.devices import device_findings
from hilum.inference.landmarks import load_landmark_map
from hilum.v1 import messages_pb2
from tests.helpers import REPO_ROOT

SPECS = load_landmark_map(REPO_ROOT / "model_repository" / "cxr_devices")
INDEX = {spec.code: spec.index for spec in SPECS}
ABSENT = Landmark(row=0.0, column=0.0, confidence=0.01)


def _points(**found: tuple[float, float]) -> list[Landmark]:
    """Every landmark absent but those given as code=(row, column), found with confidence 0.9."""
    points = [ABSENT] * len(SPECS)
    for code, (row, column) in found.items():
        points[INDEX[code]] = Landmark(row=row, column=column, confidence=0.9)
    return points


def _reader(age: str = "045Y", spacing: str | None = "0.2\\0.2",
            magnification: str | None = None) -> Callable[[], Dataset]:
    """read_header for device_findings: a header with this age, spacing and magnification."""
    return lambda: _header(age, spacing, magnification)


def _header(age: str, spacing: str | None, magnification: str | None) -> Dataset:
    header = Dataset()
    header.PatientAge = age
    header.StudyDate = "20250301"
    if spacing is not None:
        header.ImagerPixelSpacing = spacing
    if magnification is not None:
        header.EstimatedRadiographicMagnificationFactor = magnification
    return header


def test_nothing_found_reports_no_device_without_reading_the_header() -> None:
    def unread() -> Dataset:
        raise AssertionError("the header was read though no tip was found")

    assert device_findings(SPECS, [ABSENT] * len(SPECS), unread) == []
    assert device_findings(SPECS, _points(carina=(1000.0, 1000.0)), unread) == []  # anatomy alone is no device
    assert device_findings(SPECS, [], unread) == []


def test_an_ett_50_mm_above_the_carina_in_an_adult_is_satisfactory() -> None:
    # 250 rows above the carina at 0.2 mm per pixel: 50 mm.
    (ett,) = device_findings(SPECS, _points(ett_tip=(750.0, 1000.0), carina=(1000.0, 1010.0)), _reader())
    assert ett.kind == messages_pb2.DEVICE_KIND_ETT and ett.landmark == "carina"
    assert ett.tip_distance_mm == pytest.approx(50.0, abs=0.5)
    assert ett.position == messages_pb2.DEVICE_POSITION_SATISFACTORY and ett.position_called
    assert ett.probability == pytest.approx(0.9)
    assert "Imager Pixel Spacing" in ett.measurement


def test_magnification_corrects_the_distance_and_a_low_tip_is_a_main_stem_intubation() -> None:
    (ett,) = device_findings(SPECS, _points(ett_tip=(990.0, 1000.0), carina=(1000.0, 1000.0)),
                             _reader(magnification="1.25"))
    assert ett.tip_distance_mm == pytest.approx(10 * 0.2 / 1.25, abs=0.01)
    assert ett.position == messages_pb2.DEVICE_POSITION_MALPOSITIONED and ett.position_called
    assert "1.25" in ett.measurement


def test_a_child_gets_the_distance_but_no_call() -> None:
    (ett,) = device_findings(SPECS, _points(ett_tip=(750.0, 1000.0), carina=(1000.0, 1000.0)), _reader(age="006Y"))
    assert ett.tip_distance_mm == pytest.approx(50.0, abs=0.5)
    assert not ett.position_called and ett.position == messages_pb2.DEVICE_POSITION_UNSPECIFIED
    assert "under 18" in ett.position_reason


def test_without_a_pixel_spacing_no_distance_is_given() -> None:
    (ett,) = device_findings(SPECS, _points(ett_tip=(750.0, 1000.0), carina=(1000.0, 1000.0)), _reader(spacing=None))
    assert not ett.HasField("tip_distance_mm")
    assert ett.measurement.startswith("distance not measurable")
    assert ett.position == messages_pb2.DEVICE_POSITION_INDETERMINATE


def test_each_found_tip_is_its_own_device_and_a_drain_gets_no_call() -> None:
    found = device_findings(SPECS, _points(picc_tip=(900.0, 900.0), cavoatrial_junction=(950.0, 900.0),
                                           chest_tube_tip=(400.0, 300.0)), _reader())
    assert [device.kind for device in found] == [messages_pb2.DEVICE_KIND_PICC, messages_pb2.DEVICE_KIND_CHEST_TUBE]
    picc, drain = found
    assert picc.tip_distance_mm == pytest.approx(10.0, abs=0.5) and picc.landmark == "cavoatrial junction"
    assert picc.position == messages_pb2.DEVICE_POSITION_SATISFACTORY
    assert not drain.position_called and drain.landmark == "" and not drain.HasField("tip_distance_mm")
