"""AuditEvent building: every kind Hilum records is a valid R4 AuditEvent with the agents, source and entities ATNA
and BALP expect."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from hilum.common.fhir.audit_event import (
    CDS_SUBTYPE,
    DESTINATION_ROLE,
    INFERENCE_SUBTYPE,
    READ,
    TREATMENT,
    AuditAgent,
    AuditKind,
    AuditOutcome,
    AuditPatient,
    AuditRecord,
    audit_event,
    audited_patients,
)

WHEN = datetime(2026, 12, 7, 16, 30, 5, 123456, tzinfo=UTC)
PATIENT = AuditPatient(system="urn:oid:1.2.3", value="MRN-1", issuer="HOSP")
EHR = AuditAgent(user_id="https://ehr.example/iss", requestor=True, address="10.1.2.3")


def _record(kind: AuditKind, **fields: object) -> AuditRecord:
    return AuditRecord(kind=kind, requestor=EHR, recorded=WHEN, patients=(PATIENT,), study_uids=("1.2.840.1",),
                       **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(AuditKind))
def test_every_kind_is_a_valid_r4_audit_event(kind: AuditKind) -> None:
    event = audit_event(_record(kind, details=(("door", "dimse"), ("empty", ""))), "ingestion", "St Elsewhere")
    AuditEvent.model_validate(event)
    assert event["type"] == kind.type.coding() and event["action"] == kind.action
    assert event["recorded"] == "2026-12-07T16:30:05.123Z" and event["outcome"] == "0"
    assert event["source"] == {"site": "St Elsewhere",
                               "observer": {"identifier": {"value": "hilum-ingestion"}, "display": "Hilum ingestion"},
                               "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                                         "code": "4", "display": "Application Server"}]}
    requestor, hilum = event["agent"]
    assert requestor["requestor"] is True and requestor["network"] == {"address": "10.1.2.3", "type": "2"}
    assert hilum["who"]["identifier"]["value"] == "hilum-ingestion" and hilum["requestor"] is False
    patient, study = event["entity"]
    assert patient["what"] == {"type": "Patient", "identifier": {"system": "urn:oid:1.2.3", "value": "MRN-1",
                                                                 "assigner": {"display": "HOSP"}}}
    assert study["what"]["identifier"] == {"system": "urn:dicom:uid", "value": "urn:oid:1.2.840.1"}
    assert study["detail"] == [{"type": "door", "valueString": "dimse"}]  # empty values are left out
    assert audited_patients(event) == [patient["what"]]


def test_each_event_gets_its_own_id() -> None:
    record = _record(AuditKind.IMPORT)
    assert audit_event(record, "ingestion", "x")["id"] != audit_event(record, "ingestion", "x")["id"]


def test_a_failed_query_with_its_query_and_a_host_name_agent() -> None:
    record = AuditRecord(kind=AuditKind.QUERY, requestor=AuditAgent(user_id="hilum-priors", requestor=True),
                         agents=(AuditAgent(user_id="pacs", role=DESTINATION_ROLE, address="pacs.hospital.org"),),
                         outcome=AuditOutcome.SERIOUS_FAILURE, outcome_text="the source failed (TimeoutError)",
                         patients=(PATIENT,), query="PatientID=MRN-1", recorded=WHEN)
    event = audit_event(record, "priors", "hilum")
    AuditEvent.model_validate(event)
    assert event["outcome"] == "8" and event["outcomeDesc"] == "the source failed (TimeoutError)"
    assert [agent["who"]["identifier"]["value"] for agent in event["agent"]] == ["hilum-priors", "pacs"]
    assert event["agent"][1]["network"] == {"address": "pacs.hospital.org", "type": "1"}
    [query] = [entity for entity in event["entity"] if "query" in entity]
    assert base64.b64decode(query["query"]) == b"PatientID=MRN-1" and "name" not in query  # sev-1


def test_a_read_with_its_resource_subtype_and_purpose() -> None:
    event = audit_event(_record(AuditKind.REST, subtypes=(READ,), resources=("DiagnosticReport/abc",)), "fhir-api",
                        "hilum")
    AuditEvent.model_validate(event)
    assert event["subtype"] == [READ.coding()]
    assert {"reference": "DiagnosticReport/abc"} == event["entity"][-1]["what"]
    cds = audit_event(_record(AuditKind.PATIENT_RECORD, subtypes=(CDS_SUBTYPE,), purpose=(TREATMENT,),
                              details=(("hook", "patient-view"),)), "cds", "hilum")
    AuditEvent.model_validate(cds)
    assert cds["purposeOfEvent"] == [{"coding": [TREATMENT.coding()]}]


def test_details_without_an_object_get_an_entity_of_their_own() -> None:
    record = AuditRecord(kind=AuditKind.IMPORT, requestor=EHR, subtypes=(INFERENCE_SUBTYPE,),
                         outcome=AuditOutcome.MINOR_FAILURE, details=(("door", "stow"),), recorded=WHEN)
    event = audit_event(record, "ingestion", "hilum")
    AuditEvent.model_validate(event)
    assert event["entity"] == [{"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "2", "display": "System Object"},
                                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4",
                                         "display": "Domain Resource"},
                                "detail": [{"type": "door", "valueString": "stow"}]}]
