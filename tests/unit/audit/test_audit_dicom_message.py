"""The DICOM audit message (PS3.15 A.5.1) a stored AuditEvent becomes for the syslog export."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from xml.etree import ElementTree

from hilum.audit.dicom_message import dicom_audit_message
from hilum.common.fhir.audit_event import (
    DESTINATION_ROLE,
    PRIOR_SUBTYPE,
    AuditAgent,
    AuditKind,
    AuditOutcome,
    AuditPatient,
    AuditRecord,
    audit_event,
)

WHEN = datetime(2026, 12, 7, 16, 30, 5, tzinfo=UTC)


def _message(record: AuditRecord) -> ElementTree.Element:
    xml = dicom_audit_message(audit_event(record, "priors", "St Elsewhere"))
    assert xml.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ElementTree.fromstring(xml)


def test_a_query_maps_to_every_part_of_the_audit_message_in_schema_order() -> None:
    record = AuditRecord(
        kind=AuditKind.QUERY, subtypes=(PRIOR_SUBTYPE,), requestor=AuditAgent(user_id="hilum-priors", requestor=True),
        agents=(AuditAgent(user_id="pacs", role=DESTINATION_ROLE, address="10.0.0.9"),),
        outcome=AuditOutcome.SERIOUS_FAILURE, outcome_text="the source failed (TimeoutError)",
        patients=(AuditPatient(system="urn:oid:1.2.3", value="MRN-7", issuer="HOSP"),), study_uids=("1.2.840.5",),
        query="PatientID=MRN-7", details=(("prior-source", "pacs"),), recorded=WHEN)
    root = _message(record)
    assert root.tag == "AuditMessage"
    assert [child.tag for child in root] == ["EventIdentification", "ActiveParticipant", "ActiveParticipant",
                                             "AuditSourceIdentification", "ParticipantObjectIdentification",
                                             "ParticipantObjectIdentification", "ParticipantObjectIdentification"]
    event = root.find("EventIdentification")
    assert event is not None and event.attrib == {"EventActionCode": "E", "EventDateTime": "2026-12-07T16:30:05.000Z",
                                                  "EventOutcomeIndicator": "8"}
    assert [child.tag for child in event] == ["EventID", "EventTypeCode", "EventOutcomeDescription"]
    assert event[0].attrib == {"csd-code": "110112", "codeSystemName": "DCM", "originalText": "Query"}
    requestor, queried = root.findall("ActiveParticipant")
    assert requestor.attrib["UserID"] == "hilum-priors" and requestor.attrib["UserIsRequestor"] == "true"
    assert queried.attrib == {"UserID": "pacs", "UserIsRequestor": "false", "NetworkAccessPointID": "10.0.0.9",
                              "NetworkAccessPointTypeCode": "2"}
    assert queried[0].attrib["csd-code"] == "110152"
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.attrib == {"AuditEnterpriseSiteID": "St Elsewhere",
                                                    "AuditSourceID": "hilum-priors"}
    patient, study, query = root.findall("ParticipantObjectIdentification")
    assert patient.attrib == {"ParticipantObjectID": "MRN-7^^^HOSP", "ParticipantObjectTypeCode": "1",
                              "ParticipantObjectTypeCodeRole": "1"}
    assert patient[0].attrib == {"csd-code": "2", "codeSystemName": "RFC-3881", "originalText": "Patient Number"}
    assert study.attrib["ParticipantObjectID"] == "1.2.840.5" and study[0].attrib["csd-code"] == "110180"
    assert [child.tag for child in query] == ["ParticipantObjectIDTypeCode", "ParticipantObjectQuery",
                                              "ParticipantObjectDetail"]
    assert base64.b64decode(query[1].text or "") == b"PatientID=MRN-7"
    assert query[2].attrib == {"type": "prior-source", "value": base64.b64encode(b"pacs").decode()}


def test_characters_xml_cannot_carry_are_dropped_and_markup_is_escaped() -> None:
    record = AuditRecord(kind=AuditKind.IMPORT, requestor=AuditAgent(user_id="EVIL\x00<AE>&\x1b", requestor=True),
                         patients=(AuditPatient(value='MRN"\x07<1>'),), recorded=WHEN)
    root = _message(record)  # parses: nothing the header carried broke the XML
    assert root.findall("ActiveParticipant")[0].attrib["UserID"] == "EVIL<AE>&"
    [patient] = root.findall("ParticipantObjectIdentification")
    assert patient.attrib["ParticipantObjectID"] == 'MRN"<1>'
