"""Device Observations: what each says about a tube or line (which devices are reported: test_reported_findings)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.device_observation import build_device_observation
from hilum.common.reported_findings import (
    DEVICE_DISPLAY,
    DeviceChangeSincePrior,
    DevicePosition,
    DeviceType,
    ReportedDevice,
    device_code,
    reported_devices,
)
from hilum.common.wording import DEMO_WARNING
from hilum.v1 import messages_pb2

SUBJECT = Reference(reference="urn:uuid:patient")
ALGORITHM = Reference(reference="urn:uuid:device")
STUDY = [Reference(reference="urn:uuid:study")]
ISSUED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"
CHILD_REASON = "placement thresholds are for adults; patient is under 18"
MAGNIFICATION_CORRECTED = (
    "Imager Pixel Spacing corrected by the Estimated Radiographic Magnification Factor 1.1"
)


def _device(kind: messages_pb2.DeviceKind.ValueType, **fields: Any) -> ReportedDevice:
    (device,) = reported_devices([messages_pb2.DeviceFinding(kind=kind, probability=0.875, **fields)])
    return device


def _observation(device: ReportedDevice, *, demo: bool = False) -> dict[str, Any]:
    observation = build_device_observation(
        device, study_instance_uid="1.2.3", model_version="1.0.0", demo_weights=demo, subject=SUBJECT,
        algorithm=ALGORITHM, derived_from=STUDY, effective=datetime(2024, 3, 5, 8, 0, tzinfo=UTC), issued=ISSUED,
    )
    data: dict[str, Any] = observation.model_dump(mode="json", exclude_none=True)
    return data


def _components(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]["coding"][0]["code"]: c for c in data["component"]}


def test_a_malpositioned_ett_with_its_distance_in_mm() -> None:
    device = _device(messages_pb2.DEVICE_KIND_ETT, position=messages_pb2.DEVICE_POSITION_MALPOSITIONED,
                     position_called=True, tip_distance_mm=-5.0, landmark="carina",
                     measurement=MAGNIFICATION_CORRECTED,
                     position_reason="tip 5.0 mm below the carina: at or below the carina the tube may lie in a "
                                     "main bronchus (Godoy 2012)")
    data = _observation(device)
    assert data["code"]["coding"] == [
        {"system": "https://hilum.dev/fhir/CodeSystem/cxr-finding", "code": "device:ett",
         "display": "Endotracheal tube"}
    ]
    assert data["valueCodeableConcept"]["coding"][0] == {
        "system": "https://hilum.dev/fhir/CodeSystem/device-position", "code": "malpositioned",
        "display": "Malpositioned",
    }
    assert data["interpretation"][0]["coding"][0]["code"] == "A"
    components = _components(data)
    assert components["tip-distance"]["valueQuantity"] == {"value": -5.0, "unit": "mm", "system": UCUM, "code": "mm"}
    assert components["tip-distance"]["code"]["text"] == "Tip distance above the carina"
    assert components["reference-landmark"]["valueString"] == "carina"
    assert components["distance-measurement"]["valueString"] == MAGNIFICATION_CORRECTED
    assert components["position-reason"]["valueString"].startswith("tip 5.0 mm below the carina")
    assert components["probability"]["valueQuantity"]["value"] == 0.875
    assert data["identifier"][0]["value"] == "urn:hilum:observation:1.2.3:1.0.0:device:ett"
    assert (data["status"], data["meta"]["security"][0]["code"]) == ("preliminary", "AIAST")
    assert data["device"] == {"reference": "urn:uuid:device"}
    assert "note" not in data


def test_a_picc_in_a_child_is_measured_but_not_assessed() -> None:
    device = _device(messages_pb2.DEVICE_KIND_PICC, tip_distance_mm=12.0, landmark="cavoatrial junction",
                     measurement=MAGNIFICATION_CORRECTED, position_reason=CHILD_REASON)
    data = _observation(device)
    assert data["code"]["coding"][0]["code"] == "device:picc"
    assert data["code"]["text"] == "Peripherally inserted central catheter"
    assert data["valueCodeableConcept"]["coding"][0]["code"] == "not-assessed"
    assert data["valueCodeableConcept"]["text"] == "Position not assessed"
    assert "interpretation" not in data  # no call, so neither normal nor abnormal
    components = _components(data)
    assert components["tip-distance"]["valueQuantity"]["value"] == 12.0
    assert components["position-reason"]["valueString"] == CHILD_REASON
    assert components["distance-measurement"]["valueString"] == MAGNIFICATION_CORRECTED


def test_an_unmeasured_distance_says_why_and_has_no_quantity() -> None:
    device = _device(messages_pb2.DEVICE_KIND_NG_TUBE, position=messages_pb2.DEVICE_POSITION_INDETERMINATE,
                     position_called=True, measurement="distance not measurable: no pixel spacing",
                     position_reason="distance not measurable: no pixel spacing")
    data = _observation(device)
    assert data["valueCodeableConcept"]["coding"][0]["code"] == "indeterminate"
    assert data["interpretation"][0]["coding"][0]["code"] == "IND"
    components = _components(data)
    assert "tip-distance" not in components
    assert components["reference-landmark"]["valueString"] == "gastroesophageal junction"
    assert components["distance-measurement"]["valueString"] == "distance not measurable: no pixel spacing"


def test_a_chest_tube_has_neither_landmark_nor_distance() -> None:
    data = _observation(_device(messages_pb2.DEVICE_KIND_CHEST_TUBE), demo=True)
    assert set(_components(data)) == {"probability"}
    assert data["valueCodeableConcept"]["coding"][0]["code"] == "not-assessed"
    assert data["note"] == [{"text": DEMO_WARNING}]


@pytest.mark.parametrize("kind", list(DeviceType))
def test_every_kind_is_coded_in_the_one_vocabulary(kind: DeviceType) -> None:
    device = ReportedDevice(code=device_code(kind), kind=kind, display=DEVICE_DISPLAY[kind],
                            position=DevicePosition.SATISFACTORY, tip_distance_mm=None, probability=0.5)
    coding = _observation(device)["code"]["coding"][0]
    assert (coding["code"], coding["display"]) == (f"device:{kind.value}", DEVICE_DISPLAY[kind])


def test_a_tube_compared_with_the_prior_carries_its_change_and_movement_in_mm() -> None:
    device = replace(_device(messages_pb2.DEVICE_KIND_ETT, tip_distance_mm=35.0, landmark="carina"),
                     change=DeviceChangeSincePrior.MOVED, tip_movement_mm=-15.0)
    components = _components(_observation(device))
    assert components["change-since-prior"]["valueCodeableConcept"]["coding"] == [
        {"system": "https://hilum.dev/fhir/CodeSystem/change-since-prior", "code": "moved",
         "display": "Moved since prior"}]
    assert components["tip-movement"]["valueQuantity"] == {"value": -15.0, "unit": "mm", "system": UCUM, "code": "mm"}
    inserted = _components(_observation(replace(device, change=DeviceChangeSincePrior.INSERTED, tip_movement_mm=None)))
    assert inserted["change-since-prior"]["valueCodeableConcept"]["coding"][0]["code"] == "inserted"
    assert "tip-movement" not in inserted
    unchanged = _components(_observation(_device(messages_pb2.DEVICE_KIND_ETT)))
    assert "change-since-prior" not in unchanged  # no prior's devices compared: nothing said
