"""FHIR R4 AuditEvent: the record Hilum keeps of every access to a patient's data and of every inference.

Event types are DICOM PS3.15 A.5 audit events (Import, Query, Export, Instances Accessed, Patient Record) or the FHIR
`rest` type for the FHIR API, shaped as IHE ATNA and BALP do: the requestor and Hilum as agents, Hilum's service as
the observer, the patient, the study and the resource or query as entities. The same resource is what the FHIR API
serves and what the syslog export renders as a DICOM audit message.
"""

from __future__ import annotations

import base64
import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

from hilum.common.fhir.identifiers import DICOM_DCM, DICOM_UID_SYSTEM, dicom_uid_value

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
HILUM_AUDIT_SUBTYPE = "https://hilum.dev/fhir/CodeSystem/audit-event-subtype"
SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PURPOSE_OF_USE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

Json = dict[str, Any]


@dataclass(frozen=True)
class Code:
    """A coding: its system, code and display."""

    system: str
    code: str
    display: str

    def coding(self) -> Json:
        """As a FHIR Coding."""
        return {"system": self.system, "code": self.code, "display": self.display}


class AuditKind(Enum):
    """What happened, as the event's type, and the action it is by default (C create, R read, E execute)."""

    IMPORT = (Code(DICOM_DCM, "110107", "Import"), "C")  # a study received through a door
    INFERENCE = (Code(DICOM_DCM, "110103", "DICOM Instances Accessed"), "R")  # the models read its images
    QUERY = (Code(DICOM_DCM, "110112", "Query"), "E")  # a prior source asked about the patient
    EXPORT = (Code(DICOM_DCM, "110106", "Export"), "R")  # a result sent to a destination
    STUDY_DELETED = (Code(DICOM_DCM, "110105", "DICOM Study Deleted"), "D")  # its images purged under retention
    PATIENT_RECORD = (Code(DICOM_DCM, "110110", "Patient Record"), "R")  # a CDS Hooks call read the patient's result
    REST = (Code(AUDIT_EVENT_TYPE, "rest", "Restful Operation"), "R")  # a FHIR API read or search

    @property
    def type(self) -> Code:
        return self.value[0]

    @property
    def action(self) -> str:
        return self.value[1]


class AuditOutcome(StrEnum):
    """FHIR AuditEvent.outcome (the DICOM EventOutcomeIndicator)."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"  # refused, or failed in a way the requestor can act on
    SERIOUS_FAILURE = "8"  # the action failed
    MAJOR_FAILURE = "12"


# The subtypes Hilum states beside a DICOM type, and the FHIR API's interactions.
INFERENCE_SUBTYPE = Code(HILUM_AUDIT_SUBTYPE, "inference", "AI inference")
CDS_SUBTYPE = Code(HILUM_AUDIT_SUBTYPE, "cds-hooks-service", "CDS Hooks service call")
PRIOR_SUBTYPE = Code(HILUM_AUDIT_SUBTYPE, "prior-lookup", "Prior study lookup")
REFUSED_SUBTYPE = Code(HILUM_AUDIT_SUBTYPE, "refused-instance", "Instance refused at a door")
READ = Code(RESTFUL_INTERACTION, "read", "read")
VREAD = Code(RESTFUL_INTERACTION, "vread", "vread")
SEARCH = Code(RESTFUL_INTERACTION, "search-type", "search type")

# Agent roles (DICOM PS3.16 CID 402) and entity types and roles (R4 audit-entity-type, object-role).
SOURCE_ROLE = Code(DICOM_DCM, "110153", "Source Role ID")
DESTINATION_ROLE = Code(DICOM_DCM, "110152", "Destination Role ID")
APPLICATION_ROLE = Code(DICOM_DCM, "110150", "Application")
PERSON = Code(ENTITY_TYPE, "1", "Person")
SYSTEM_OBJECT = Code(ENTITY_TYPE, "2", "System Object")
PATIENT_ROLE = Code(OBJECT_ROLE, "1", "Patient")
REPORT_ROLE = Code(OBJECT_ROLE, "3", "Report")
RESOURCE_ROLE = Code(OBJECT_ROLE, "4", "Domain Resource")
QUERY_ROLE = Code(OBJECT_ROLE, "24", "Query")
APPLICATION_SERVER = Code(SECURITY_SOURCE_TYPE, "4", "Application Server")
TREATMENT = Code(PURPOSE_OF_USE, "TREAT", "treatment")


@dataclass(frozen=True)
class AuditAgent:
    """Someone or something that took part: an EHR, a client, a sending modality, a destination, a model.

    `user_id` names it (a JWT issuer, an OAuth client id, an AE title, a destination, a model version); `address` is
    its network address (IP or host name) when known."""

    user_id: str
    name: str = ""
    role: Code = SOURCE_ROLE
    requestor: bool = False
    address: str = ""


@dataclass(frozen=True)
class AuditPatient:
    """The patient whose data was touched, by an identifier (the MRN) or by a reference to a stored Patient."""

    system: str = ""
    value: str = ""
    issuer: str = ""  # the DICOM Issuer of Patient ID, when known
    reference: str = ""  # "Patient/<id>" in Hilum's FHIR store


@dataclass(frozen=True)
class AuditRecord:
    """One event, before it becomes a resource. `resources` are FHIR references read ("DiagnosticReport/<id>");
    `query` is what a search or query asked (kept base64, as FHIR wants it); `details` are (type, value) pairs stated
    on the event's object (a destination, a model version, a door, a reason)."""

    kind: AuditKind
    requestor: AuditAgent
    outcome: AuditOutcome = AuditOutcome.SUCCESS
    outcome_text: str = ""
    action: str = ""  # "": the kind's action
    subtypes: tuple[Code, ...] = ()
    agents: tuple[AuditAgent, ...] = ()
    patients: tuple[AuditPatient, ...] = ()
    study_uids: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    query: str = ""
    details: tuple[tuple[str, str], ...] = ()
    purpose: tuple[Code, ...] = ()
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))


def _concept(code: Code) -> Json:
    return {"coding": [code.coding()]}


def _agent(agent: AuditAgent) -> Json:
    who: Json = {"identifier": {"value": agent.user_id}}
    if agent.name:
        who["display"] = agent.name
    built: Json = {"type": _concept(agent.role), "who": who, "requestor": agent.requestor}
    if agent.name:
        built["name"] = agent.name
    if agent.address:
        built["network"] = {"address": agent.address, "type": "2" if _is_ip(agent.address) else "1"}
    return built


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _patient_entity(patient: AuditPatient) -> Json:
    what: Json = {"type": "Patient"}
    if patient.reference:
        what["reference"] = patient.reference
    if patient.value:
        identifier: Json = {"system": patient.system, "value": patient.value} if patient.system \
            else {"value": patient.value}
        if patient.issuer:
            identifier["assigner"] = {"display": patient.issuer}
        what["identifier"] = identifier
    return {"what": what, "type": PERSON.coding(), "role": PATIENT_ROLE.coding()}


def _details(details: tuple[tuple[str, str], ...]) -> list[Json]:
    return [{"type": kind, "valueString": value} for kind, value in details if value]


def instant(moment: datetime) -> str:
    """A FHIR instant in UTC with milliseconds, e.g. 2026-12-07T16:00:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_event(record: AuditRecord, observer: str, site: str) -> Json:
    """The AuditEvent of a record, observed by Hilum's `observer` service at `site` (a new uuid4 id each time)."""
    application = AuditAgent(user_id=f"hilum-{observer}", name=f"Hilum {observer}", role=APPLICATION_ROLE,
                             requestor=False)
    agents = [record.requestor, *record.agents]
    if not any(agent.user_id == application.user_id for agent in agents):
        agents.append(application)
    entities = [_patient_entity(patient) for patient in record.patients if patient.value or patient.reference]
    for uid in record.study_uids:
        entity: Json = {"what": {"identifier": {"system": DICOM_UID_SYSTEM, "value": dicom_uid_value(uid)}},
                        "type": SYSTEM_OBJECT.coding(), "role": REPORT_ROLE.coding()}
        entities.append(entity)
    for reference in record.resources:
        entities.append({"what": {"reference": reference}, "type": SYSTEM_OBJECT.coding(),
                         "role": RESOURCE_ROLE.coding()})
    if record.query:
        entities.append({"type": SYSTEM_OBJECT.coding(), "role": QUERY_ROLE.coding(),
                         "query": base64.b64encode(record.query.encode()).decode()})
    if _details(record.details):  # stated on the event's object: the last entity that is not the patient
        carrier = next((entity for entity in reversed(entities) if entity["role"] != PATIENT_ROLE.coding()), None)
        if carrier is None:
            carrier = {"type": SYSTEM_OBJECT.coding(), "role": RESOURCE_ROLE.coding()}
            entities.append(carrier)
        carrier["detail"] = _details(record.details)
    event: Json = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": record.kind.type.coding(),
    }
    if record.subtypes:
        event["subtype"] = [code.coding() for code in record.subtypes]
    event["action"] = record.action or record.kind.action
    event["recorded"] = instant(record.recorded)
    event["outcome"] = record.outcome.value
    if record.outcome_text:
        event["outcomeDesc"] = record.outcome_text
    if record.purpose:
        event["purposeOfEvent"] = [_concept(code) for code in record.purpose]
    event["agent"] = [_agent(agent) for agent in agents]
    event["source"] = {"site": site, "observer": {"identifier": {"value": application.user_id},
                                                  "display": application.name},
                       "type": [APPLICATION_SERVER.coding()]}
    if entities:
        event["entity"] = entities
    return event


def audited_patients(event: Json) -> list[Json]:
    """The `what` of each patient entity of a stored AuditEvent."""
    return [entity["what"] for entity in event.get("entity", [])
            if isinstance(entity, dict) and isinstance(entity.get("what"), dict)
            and entity.get("role", {}).get("code") == PATIENT_ROLE.code]
