"""Deterministic ids and stable identifier values."""

from __future__ import annotations

import uuid

from hilum.common.fhir.identifiers import dicom_uid_value, report_identifier_value, resource_uuid


def test_resource_uuid_is_a_stable_uuid5() -> None:
    first = resource_uuid("DiagnosticReport", "1.2.3", "demo-untrained")
    assert first == resource_uuid("DiagnosticReport", "1.2.3", "demo-untrained")
    assert uuid.UUID(first).version == 5


def test_resource_uuid_depends_on_kind_and_every_part() -> None:
    ids = {
        resource_uuid("DiagnosticReport", "1.2.3", "v1"),
        resource_uuid("Observation", "1.2.3", "v1"),
        resource_uuid("DiagnosticReport", "1.2.3", "v2"),
        resource_uuid("DiagnosticReport", "1.2.4", "v1"),
        # Same characters split differently must not collide.
        resource_uuid("DiagnosticReport", "1.2.3v1"),
    }
    assert len(ids) == 5


def test_identifier_values() -> None:
    assert dicom_uid_value("1.2.840.1") == "urn:oid:1.2.840.1"
    assert report_identifier_value("1.2.3", "demo-untrained") == "urn:hilum:report:1.2.3:demo-untrained"
