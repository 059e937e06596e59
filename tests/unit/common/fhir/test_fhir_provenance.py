"""Provenance of the report and Observations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.provenance import build_provenance

RECORDED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def test_device_is_the_author_and_the_study_the_source() -> None:
    provenance = build_provenance(
        targets=[Reference(reference="urn:uuid:report"), Reference(reference="urn:uuid:obs")],
        device=Reference(reference="urn:uuid:device"),
        sources=[Reference(reference="urn:uuid:study")],
        recorded=RECORDED,
    )
    data = provenance.model_dump(mode="json")
    assert [t["reference"] for t in data["target"]] == ["urn:uuid:report", "urn:uuid:obs"]
    assert data["recorded"] == "2024-03-05T09:30:00Z"
    (agent,) = data["agent"]
    assert agent["who"] == {"reference": "urn:uuid:device"}
    assert agent["type"]["coding"][0]["code"] == "author"
    assert data["entity"] == [{"role": "source", "what": {"reference": "urn:uuid:study"}}]


def test_provenance_needs_a_target() -> None:
    with pytest.raises(ValueError, match="target"):
        build_provenance(targets=[], device=Reference(reference="urn:uuid:d"), sources=[], recorded=RECORDED)
