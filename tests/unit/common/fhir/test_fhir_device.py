"""The AI algorithm Device."""

from __future__ import annotations

import json

import pytest

from hilum.common.fhir.device import build_device
from hilum.common.wording import DEMO_WARNING, device_demo_note
from hilum.v1 import messages_pb2


def test_demo_device_says_plainly_it_is_not_validated() -> None:
    device = build_device(
        messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=True)
    )
    data = device.model_dump(mode="json")
    names = [n["name"] for n in data["deviceName"]]
    assert "cxr_findings" in names
    assert any(DEMO_WARNING in name for name in names)
    assert data["note"][0]["text"] == device_demo_note("demo-untrained")
    assert data["note"][0]["text"].startswith(DEMO_WARNING)
    assert data["safety"][0]["text"] == DEMO_WARNING
    assert data["version"] == [{"value": "demo-untrained"}]
    assert data["type"] == {"text": "AI algorithm"}
    assert data["identifier"][0]["value"] == "cxr_findings:demo-untrained"


def test_validated_device_carries_no_demo_wording() -> None:
    device = build_device(messages_pb2.ModelInfo(name="cxr_findings", version="1.0.0", demo_weights=False))
    text = json.dumps(device.model_dump(mode="json"))
    assert "DEMO" not in text and "NOT FOR CLINICAL USE" not in text
    assert device.version is not None and device.version[0].value == "1.0.0"


def test_device_needs_name_and_version() -> None:
    with pytest.raises(ValueError, match="version"):
        build_device(messages_pb2.ModelInfo(name="cxr_findings", version=""))


def test_the_device_names_the_weights_file_and_the_label_set_that_made_the_result() -> None:
    sha256 = "ab" * 32
    device = build_device(messages_pb2.ModelInfo(
        name="cxr_findings", version="densenet121-res224-all-0123456789ab", demo_weights=False,
        weights_sha256=sha256, label_set="18 labels, sha256 0123456789abcdef"))
    data = device.model_dump(mode="json")
    assert data["version"] == [
        {"value": "densenet121-res224-all-0123456789ab"},
        {"type": {"text": "weights SHA-256"}, "value": sha256},
        {"type": {"text": "label set"}, "value": "18 labels, sha256 0123456789abcdef"},
    ]
    # The identifier stays name:version, so that results of one version find one Device.
    assert data["identifier"][0]["value"] == "cxr_findings:densenet121-res224-all-0123456789ab"
