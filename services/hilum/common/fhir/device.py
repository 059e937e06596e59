"""Device resource for the AI algorithm (model name + version, weights SHA-256, label set) that produced a result."""

from __future__ import annotations

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.device import Device, DeviceDeviceName, DeviceVersion
from fhir.resources.R4B.identifier import Identifier

from hilum.common.fhir.identifiers import HILUM_ALGORITHM_SYSTEM, algorithm_identifier_value
from hilum.common.wording import DEMO_WARNING, device_demo_note
from hilum.v1 import messages_pb2

DEVICE_TYPE_TEXT = "AI algorithm"
# Device.version entries beside the model version: which weights file ran, and which label map read its outputs.
WEIGHTS_SHA256 = "weights SHA-256"
LABEL_SET = "label set"


def algorithm_identifier(model: messages_pb2.ModelInfo) -> Identifier:
    """The stable identifier of an algorithm version: Hilum algorithm system | "<name>:<version>"."""
    return Identifier(
        system=HILUM_ALGORITHM_SYSTEM, value=algorithm_identifier_value(model.name, model.version)
    )


def build_device(model: messages_pb2.ModelInfo) -> Device:
    """Device for `model`; with demo weights its names, safety and note say plainly it is not validated."""
    if not model.name or not model.version:
        raise ValueError("an algorithm Device needs both the model name and the model version")
    names = [DeviceDeviceName(name=model.name, type="model-name")]
    if model.demo_weights:
        names.append(
            DeviceDeviceName(name=f"{model.name} {model.version} — {DEMO_WARNING}", type="user-friendly-name")
        )
    return Device(
        identifier=[algorithm_identifier(model)],
        status="active",
        deviceName=names,
        type=CodeableConcept(text=DEVICE_TYPE_TEXT),
        version=[
            DeviceVersion(value=model.version),
            *([DeviceVersion(type=CodeableConcept(text=WEIGHTS_SHA256), value=model.weights_sha256)]
              if model.weights_sha256 else []),
            *([DeviceVersion(type=CodeableConcept(text=LABEL_SET), value=model.label_set)] if model.label_set else []),
        ],
        safety=[CodeableConcept(text=DEMO_WARNING)] if model.demo_weights else None,
        note=[Annotation(text=device_demo_note(model.version))] if model.demo_weights else None,
    )
