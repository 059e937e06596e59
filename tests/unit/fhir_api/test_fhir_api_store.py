"""The versioned store: bundles stored under their urn:uuid ids, references rewritten, versions and tombstones."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.fhir_api.store import (
    InvalidResource,
    StoreOutcome,
    delete_resource,
    read_current,
    read_version,
    split_escaped,
    store_bundle,
)
from hilum.fhir_api.tables import FhirResourceRow, FhirTokenRow
from tests.unit.fhir_api.synthetic_reports import MRN_SYSTEM, synthetic_report

NOW = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
PATIENT_ID = "5b4b2c1a-0000-4000-8000-000000000001"


def _entry(resource: dict[str, Any], full_url: str, method: str = "POST", url: str = "") -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": method, "url": url or resource["resourceType"]}}


def _bundle_with_patient() -> dict[str, Any]:
    """A hand-made transaction: a Patient carried in the bundle, a report on it, a conditional ServiceRequest
    reference, and a Provenance sent as a PUT."""
    patient = {"resourceType": "Patient", "identifier": [{"system": MRN_SYSTEM, "value": "MRN-7"}]}
    report = {"resourceType": "DiagnosticReport", "status": "preliminary",
              "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:hilum:report:7"}],
              "code": {"coding": [{"system": "http://loinc.org", "code": "36554-4"}]},
              "subject": {"reference": f"Patient?identifier={MRN_SYSTEM}|MRN-7", "type": "Patient",
                          "identifier": {"system": MRN_SYSTEM, "value": "MRN-7"}},
              "basedOn": [{"reference": "ServiceRequest?identifier=urn:hilum:placer-order-number|PO\\|1"}],
              "effectiveDateTime": "2024-03-05T08:15:00Z"}
    provenance = {"resourceType": "Provenance", "id": "prov-7", "recorded": "2024-03-05T09:00:00Z",
                  "target": [{"reference": "urn:uuid:6d0c7f0e-0000-4000-8000-000000000002"}],
                  "agent": [{"who": {"display": "Hilum"}}]}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry(report, "urn:uuid:6d0c7f0e-0000-4000-8000-000000000002"),
        _entry(patient, f"urn:uuid:{PATIENT_ID}"),
        _entry(provenance, "urn:uuid:7e1d8a1f-0000-4000-8000-000000000003", "PUT", "Provenance/prov-7"),
    ]}


def _current(session: Session, resource_type: str, resource_id: str) -> dict[str, Any]:
    version = read_current(session, resource_type, resource_id)
    assert version is not None and not version.deleted
    parsed: dict[str, Any] = json.loads(version.text)
    return parsed


def test_a_report_bundle_is_stored_under_its_uuids_with_references_rewritten(
        sessions: sessionmaker[Session]) -> None:
    report = synthetic_report(0, 3)
    with sessions.begin() as session:
        refs = store_bundle(session, report.bundle, NOW)
    assert [ref.outcome for ref in refs] == [StoreOutcome.CREATED] * len(report.bundle["entry"])
    assert [ref.resource_id for ref in refs] == [e["fullUrl"].removeprefix("urn:uuid:") for e in report.bundle["entry"]]
    with sessions() as session:
        stored = _current(session, "DiagnosticReport", report.resource_ids("DiagnosticReport")[0])
        observation = _current(session, "Observation", report.resource_ids("Observation")[0])
    assert stored["meta"]["versionId"] == "1"
    assert stored["meta"]["lastUpdated"] == "2024-03-05T10:00:00.000000Z"
    assert stored["meta"]["security"][0]["code"] == "AIAST"  # the bundle's own meta is kept
    assert stored["imagingStudy"] == [{"reference": f"ImagingStudy/{report.resource_ids('ImagingStudy')[0]}"}]
    assert {"reference": f"Observation/{observation['id']}"} in stored["result"]
    assert observation["device"] == {"reference": f"Device/{report.resource_ids('Device')[0]}"}
    # The hospital's Patient is not stored: the subject keeps only its identifier.
    assert "reference" not in stored["subject"]
    assert stored["subject"]["identifier"]["value"] == report.mrn
    assert "urn:uuid:" not in json.dumps(stored) + json.dumps(observation)


def test_the_same_bundle_again_makes_no_new_version_and_a_change_makes_the_next(
        sessions: sessionmaker[Session]) -> None:
    report = synthetic_report(1, 3)
    report_id = report.resource_ids("DiagnosticReport")[0]
    with sessions.begin() as session:
        store_bundle(session, report.bundle, NOW)
    with sessions.begin() as session:
        again = store_bundle(session, report.bundle, NOW + timedelta(minutes=5))
    assert {ref.outcome for ref in again} == {StoreOutcome.UNCHANGED}
    amended = copy.deepcopy(report.bundle)
    for entry in amended["entry"]:
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            entry["resource"]["status"] = "amended"
    with sessions.begin() as session:
        refs = store_bundle(session, amended, NOW + timedelta(minutes=10))
    changed = [ref for ref in refs if ref.outcome is not StoreOutcome.UNCHANGED]
    assert [(ref.reference, ref.version_id, ref.outcome) for ref in changed] == [
        (f"DiagnosticReport/{report_id}", 2, StoreOutcome.UPDATED)]
    with sessions() as session:
        assert _current(session, "DiagnosticReport", report_id)["status"] == "amended"
        first = read_version(session, "DiagnosticReport", report_id, 1)
        assert first is not None and json.loads(first.text)["status"] == "preliminary"
        assert read_version(session, "DiagnosticReport", report_id, 3) is None


def test_an_update_replaces_the_search_tokens_of_the_resource_it_changes(sessions: sessionmaker[Session]) -> None:
    """A new resource has no tokens to replace; a changed one has its old tokens removed, not kept beside the new."""
    report = synthetic_report(2, 3)
    report_id = report.resource_ids("DiagnosticReport")[0]

    def tokens(session: Session) -> list[tuple[str, str]]:
        row = session.scalars(select(FhirResourceRow).where(FhirResourceRow.resource_id == report_id)).one()
        return sorted((token.param, token.value) for token in session.scalars(
            select(FhirTokenRow).where(FhirTokenRow.resource_seq == row.seq)))

    with sessions.begin() as session:
        store_bundle(session, report.bundle, NOW)
        first = tokens(session)
    (old,) = [token for token in first if token[0] == "code"]
    assert len(first) == len(set(first))
    recoded = copy.deepcopy(report.bundle)
    for entry in recoded["entry"]:
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            entry["resource"]["code"]["coding"][0]["code"] = "18748-4"
    with sessions.begin() as session:
        store_bundle(session, recoded, NOW + timedelta(minutes=1))
        second = tokens(session)
    assert second == sorted([*(token for token in first if token != old), ("code", "18748-4")])


def test_a_carried_patient_is_referenced_and_indexes_its_reports(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        refs = store_bundle(session, _bundle_with_patient(), NOW)
    assert [ref.reference for ref in refs] == ["DiagnosticReport/6d0c7f0e-0000-4000-8000-000000000002",
                                               f"Patient/{PATIENT_ID}", "Provenance/prov-7"]
    with sessions() as session:
        report = _current(session, "DiagnosticReport", "6d0c7f0e-0000-4000-8000-000000000002")
        provenance = _current(session, "Provenance", "prov-7")
        row = session.scalars(select(FhirResourceRow).where(FhirResourceRow.resource_type == "DiagnosticReport")).one()
        tokens = {(t.param, t.system, t.value) for t in session.scalars(
            select(FhirTokenRow).where(FhirTokenRow.resource_seq == row.seq))}
    assert report["subject"]["reference"] == f"Patient/{PATIENT_ID}"
    assert row.patient_ref == f"Patient/{PATIENT_ID}"
    assert ("patient-identifier", MRN_SYSTEM, "MRN-7") in tokens
    assert ("code", "http://loinc.org", "36554-4") in tokens
    # A ServiceRequest Hilum does not hold: identifier-only, the escaped "|" in the value unescaped.
    assert report["basedOn"] == [{"type": "ServiceRequest",
                                  "identifier": {"system": "urn:hilum:placer-order-number", "value": "PO|1"}}]
    assert provenance["target"] == [{"reference": "DiagnosticReport/6d0c7f0e-0000-4000-8000-000000000002"}]


def test_a_later_bundle_refers_to_a_patient_the_store_already_holds(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        store_bundle(session, _bundle_with_patient(), NOW)
    report = synthetic_report(7, 100)  # MRN-00007 is not that Patient's identifier: stays identifier-only
    with sessions.begin() as session:
        store_bundle(session, report.bundle, NOW)
    later = _bundle_with_patient()
    later["entry"] = [later["entry"][0]]  # the report alone, its Patient already stored
    later["entry"][0]["resource"]["status"] = "final"
    with sessions.begin() as session:
        store_bundle(session, later, NOW)
        assert _current(session, "DiagnosticReport", "6d0c7f0e-0000-4000-8000-000000000002")["subject"][
            "reference"] == f"Patient/{PATIENT_ID}"
        assert "reference" not in _current(session, "DiagnosticReport", report.resource_ids("DiagnosticReport")[0])[
            "subject"]


def test_deleting_leaves_a_tombstone_and_storing_again_revives(sessions: sessionmaker[Session]) -> None:
    report = synthetic_report(2, 3)
    report_id = report.resource_ids("DiagnosticReport")[0]
    with sessions.begin() as session:
        store_bundle(session, report.bundle, NOW)
        deleted = delete_resource(session, "DiagnosticReport", report_id, NOW + timedelta(minutes=1))
        assert deleted is not None and (deleted.version_id, deleted.outcome) == (2, StoreOutcome.DELETED)
        again = delete_resource(session, "DiagnosticReport", report_id, NOW + timedelta(minutes=2))
        assert again is not None and (again.version_id, again.outcome) == (2, StoreOutcome.UNCHANGED)
        assert delete_resource(session, "DiagnosticReport", "never-stored", NOW) is None
    with sessions() as session:
        current = read_current(session, "DiagnosticReport", report_id)
        tombstone = read_version(session, "DiagnosticReport", report_id, 2)
        assert current is not None and current.deleted and current.text == ""
        assert tombstone is not None and tombstone.deleted
    with sessions.begin() as session:
        revived = [r for r in store_bundle(session, report.bundle, NOW + timedelta(minutes=3))
                   if r.resource_type == "DiagnosticReport"]
    assert [(r.version_id, r.outcome) for r in revived] == [(3, StoreOutcome.UPDATED)]


def test_versions_of_one_resource_never_go_back_in_time(sessions: sessionmaker[Session]) -> None:
    report = synthetic_report(4, 3)
    report_id = report.resource_ids("DiagnosticReport")[0]
    changed = copy.deepcopy(report.bundle)
    for entry in changed["entry"]:
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            entry["resource"]["status"] = "amended"
    with sessions.begin() as session:
        store_bundle(session, report.bundle, NOW)
        store_bundle(session, changed, NOW - timedelta(hours=1))  # a clock that stepped back
        first, second = (read_version(session, "DiagnosticReport", report_id, v) for v in (1, 2))
    assert first is not None and second is not None and second.last_updated_us > first.last_updated_us


@pytest.mark.parametrize("bundle", [
    {"resourceType": "Patient"},
    {"resourceType": "Bundle", "entry": [{"fullUrl": "urn:uuid:x"}]},
    {"resourceType": "Bundle", "entry": [{"fullUrl": "urn:uuid:not a valid id!", "resource": {"resourceType": "X"}}]},
])
def test_what_cannot_be_stored_is_refused(sessions: sessionmaker[Session], bundle: dict[str, Any]) -> None:
    with sessions.begin() as session, pytest.raises(InvalidResource):
        store_bundle(session, bundle, NOW)


def test_search_values_split_on_unescaped_separators_only() -> None:
    assert split_escaped("a\\|b|c", "|") == ["a|b", "c"]
    assert split_escaped("x,y\\,z", ",") == ["x", "y,z"]
