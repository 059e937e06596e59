"""The drafter's tables: every model label has a region and an urgency, and the urgent ones come first."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilum.common.reported_findings import (
    DevicePosition,
    DeviceType,
    FindingStatus,
    ModelProvenance,
    ReportedDevice,
    ReportedFinding,
)
from hilum.common.reported_findings import Laterality as Side
from hilum.inference.labels import load_label_map
from hilum.reporting.draft_regions import (
    INDETERMINATE_DEVICE,
    MALPOSITIONED_DEVICE,
    NORMAL_SENTENCE,
    URGENCY,
    Region,
    device_urgency,
    finding_urgency,
    region_of,
)

LABEL_CODES = [label.code for label in load_label_map(Path(__file__).parents[3] / "model_repository" / "cxr_findings")]
MODEL = ModelProvenance(name="cxr_findings", version="1", demo_weights=False)


def _finding(code: str, status: FindingStatus = FindingStatus.PRESENT) -> ReportedFinding:
    return ReportedFinding(code=code, display=code, snomed_code="", status=status, probability=0.8, threshold=0.5,
                           laterality=Side.UNSPECIFIED, change=None, model=MODEL)


def _device(position: DevicePosition) -> ReportedDevice:
    return ReportedDevice(code="device:ett", kind=DeviceType.ETT, display="Endotracheal tube", position=position,
                          tip_distance_mm=None, probability=0.9)


@pytest.mark.parametrize("code", LABEL_CODES)
def test_every_model_label_has_a_region_and_an_urgency(code: str) -> None:
    assert region_of(code) not in (Region.OTHER, Region.LINES_AND_TUBES)
    assert URGENCY.count(code) == 1


def test_regions_of_typical_labels() -> None:
    assert [region_of(c) for c in ("pneumothorax", "effusion", "consolidation", "cardiomegaly", "fracture")] == [
        Region.PLEURA, Region.PLEURA, Region.LUNGS, Region.HEART_AND_MEDIASTINUM, Region.BONES,
    ]
    assert region_of("device:cvc:2") == Region.LINES_AND_TUBES
    assert region_of("rib_lesion") == Region.OTHER


def test_region_order_is_the_report_order() -> None:
    assert [r.value for r in Region] == ["Lines and tubes", "Lungs", "Pleura", "Heart and mediastinum", "Bones",
                                         "Other"]


def test_every_finding_region_has_a_normal_sentence() -> None:
    assert set(NORMAL_SENTENCE) == set(Region) - {Region.LINES_AND_TUBES}


def test_pneumothorax_and_misplaced_devices_lead() -> None:
    assert URGENCY[:3] == ("pneumothorax", MALPOSITIONED_DEVICE, INDETERMINATE_DEVICE)
    assert len(URGENCY) == len(set(URGENCY)) == len(LABEL_CODES) + 2


def test_finding_urgency_puts_unlisted_then_resolved_last() -> None:
    assert finding_urgency(_finding("pneumothorax")) == 0
    assert finding_urgency(_finding("pneumothorax", FindingStatus.UNCERTAIN)) == 0
    assert finding_urgency(_finding("edema")) < finding_urgency(_finding("nodule"))
    unlisted = finding_urgency(_finding("rib_lesion"))
    assert max(finding_urgency(_finding(c)) for c in LABEL_CODES) < unlisted
    assert unlisted < finding_urgency(_finding("pneumothorax", FindingStatus.RESOLVED))


def test_device_urgency_by_position() -> None:
    assert device_urgency(_device(DevicePosition.MALPOSITIONED)) == 1
    assert device_urgency(_device(DevicePosition.INDETERMINATE)) == 2
    assert device_urgency(_device(DevicePosition.SATISFACTORY)) is None
