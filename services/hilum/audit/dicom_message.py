"""A stored FHIR AuditEvent as the DICOM audit message (PS3.15 A.5.1 schema), the XML that IHE ATNA's Record Audit
Event (ITI-20) carries over syslog.

The mapping follows the FHIR AuditEvent ↔ DICOM correspondence: EventIdentification from type, subtype, action,
recorded and outcome; an ActiveParticipant per agent; AuditSourceIdentification from source; a
ParticipantObjectIdentification per entity. Values come from DICOM headers and EHRs, so characters XML 1.0 cannot
carry are dropped.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from xml.etree import ElementTree

from hilum.common.fhir.identifiers import DICOM_DCM, DICOM_UID_SYSTEM

Json = dict[str, Any]

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Participant object id types: RFC 3881's defaults and DICOM's Study Instance UID.
_PATIENT_NUMBER = ("2", "RFC-3881", "Patient Number")
_STUDY_UID = ("110180", "DCM", "Study Instance UID")
_URI = ("12", "RFC-3881", "URI")


def _text(value: object) -> str:
    return _NOT_XML.sub("", str(value))


def _system_name(system: str) -> str:
    """The codeSystemName of a FHIR coding system: "DCM" for DICOM's, else the system URI itself."""
    return "DCM" if system == DICOM_DCM else system


def _coded(parent: ElementTree.Element, tag: str, coding: Json) -> None:
    ElementTree.SubElement(parent, tag, {
        "csd-code": _text(coding.get("code", "")), "codeSystemName": _text(_system_name(coding.get("system", ""))),
        "originalText": _text(coding.get("display") or coding.get("code", "")),
    })


def _concept_codings(concept: object) -> list[Json]:
    return [c for c in concept.get("coding", []) if isinstance(c, dict)] if isinstance(concept, dict) else []


def _participant(parent: ElementTree.Element, agent: Json) -> None:
    who = agent.get("who", {})
    user_id = who.get("identifier", {}).get("value") or who.get("display") or "unknown"
    attributes = {"UserID": _text(user_id), "UserIsRequestor": "true" if agent.get("requestor") else "false"}
    if agent.get("name"):
        attributes["UserName"] = _text(agent["name"])
    network = agent.get("network")
    if isinstance(network, dict) and network.get("address"):
        attributes["NetworkAccessPointID"] = _text(network["address"])
        attributes["NetworkAccessPointTypeCode"] = _text(network.get("type", "1"))
    element = ElementTree.SubElement(parent, "ActiveParticipant", attributes)
    for coding in _concept_codings(agent.get("type")):
        _coded(element, "RoleIDCode", coding)


def _object_id(entity: Json) -> tuple[str, tuple[str, str, str]]:
    """The ParticipantObjectID and its id type code of an entity."""
    what = entity.get("what", {})
    identifier = what.get("identifier", {})
    if what.get("type") == "Patient" and identifier.get("value"):
        issuer = identifier.get("assigner", {}).get("display", "")
        return (f"{identifier['value']}^^^{issuer}" if issuer else identifier["value"]), _PATIENT_NUMBER
    if identifier.get("system") == DICOM_UID_SYSTEM:
        return str(identifier.get("value", "")).removeprefix("urn:oid:"), _STUDY_UID
    return str(what.get("reference") or identifier.get("value") or "query"), _URI


def _participant_object(parent: ElementTree.Element, entity: Json) -> None:
    object_id, id_type = _object_id(entity)
    attributes = {"ParticipantObjectID": _text(object_id)}
    if isinstance(entity.get("type"), dict):
        attributes["ParticipantObjectTypeCode"] = _text(entity["type"].get("code", ""))
    if isinstance(entity.get("role"), dict):
        attributes["ParticipantObjectTypeCodeRole"] = _text(entity["role"].get("code", ""))
    element = ElementTree.SubElement(parent, "ParticipantObjectIdentification", attributes)
    ElementTree.SubElement(element, "ParticipantObjectIDTypeCode", {
        "csd-code": id_type[0], "codeSystemName": id_type[1], "originalText": id_type[2]})
    if entity.get("query"):
        ElementTree.SubElement(element, "ParticipantObjectQuery").text = _text(entity["query"])
    for detail in entity.get("detail", []):
        value = detail.get("valueString", "")
        ElementTree.SubElement(element, "ParticipantObjectDetail", {
            "type": _text(detail.get("type", "")),
            "value": base64.b64encode(_text(value).encode()).decode()})


def dicom_audit_message(event: Json) -> bytes:
    """The DICOM audit message XML (UTF-8, with its declaration) of a stored AuditEvent."""
    root = ElementTree.Element("AuditMessage")
    identification = ElementTree.SubElement(root, "EventIdentification", {
        "EventActionCode": _text(event.get("action", "E")), "EventDateTime": _text(event.get("recorded", "")),
        "EventOutcomeIndicator": _text(event.get("outcome", "0"))})
    _coded(identification, "EventID", event.get("type", {}))
    for coding in event.get("subtype", []):
        _coded(identification, "EventTypeCode", coding)
    if event.get("outcomeDesc"):
        ElementTree.SubElement(identification, "EventOutcomeDescription").text = _text(event["outcomeDesc"])
    for concept in event.get("purposeOfEvent", []):
        for coding in _concept_codings(concept):
            _coded(identification, "PurposeOfUse", coding)
    for agent in event.get("agent", []):
        _participant(root, agent)
    source = event.get("source", {})
    observer = source.get("observer", {})
    audit_source = ElementTree.SubElement(root, "AuditSourceIdentification", {
        "AuditEnterpriseSiteID": _text(source.get("site", "")),
        "AuditSourceID": _text(observer.get("identifier", {}).get("value") or observer.get("display", ""))})
    for coding in source.get("type", []):
        ElementTree.SubElement(audit_source, "AuditSourceTypeCode", {"csd-code": _text(coding.get("code", ""))})
    for entity in event.get("entity", []):
        _participant_object(root, entity)
    message: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return message
