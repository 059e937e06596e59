"""Code systems, URIs and deterministic ids shared by every FHIR resource Hilum emits.

Ids are uuid5 over (kind, parts) so that rerunning a stage on the same study yields byte-identical bundles.
"""

from __future__ import annotations

import uuid

# Hilum's own code systems and naming systems.
HILUM_FINDING_SYSTEM = "https://hilum.dev/fhir/CodeSystem/cxr-finding"
HILUM_COMPONENT_SYSTEM = "https://hilum.dev/fhir/CodeSystem/cxr-observation-component"
HILUM_CHANGE_SYSTEM = "https://hilum.dev/fhir/CodeSystem/change-since-prior"
HILUM_DEVICE_POSITION_SYSTEM = "https://hilum.dev/fhir/CodeSystem/device-position"
HILUM_ALGORITHM_SYSTEM = "https://hilum.dev/fhir/NamingSystem/algorithm"
HILUM_PROVENANCE_SYSTEM = "https://hilum.dev/fhir/CodeSystem/report-provenance"

# External terminologies (canonical URIs from the FHIR R4 terminology pages).
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V3_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PROVENANCE_PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"
DICOM_UID_SYSTEM = "urn:dicom:uid"
RFC3986 = "urn:ietf:rfc:3986"

# Security label for AI-asserted content (v3-ObservationValue AIAST).
AI_ASSERTED_CODE = "AIAST"
AI_ASSERTED_DISPLAY = "Artificial Intelligence asserted"

# Fixed namespace so uuid5 ids are stable across processes, hosts and releases.
HILUM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://hilum.dev/fhir")


def resource_uuid(kind: str, *parts: str) -> str:
    """Deterministic uuid5 (string form) for a resource of `kind` identified by `parts`."""
    # The unit separator cannot occur in DICOM UIDs, codes or versions, so joins are unambiguous.
    return str(uuid.uuid5(HILUM_NAMESPACE, "\x1f".join((kind, *parts))))


def dicom_uid_value(uid: str) -> str:
    """A DICOM UID as an `urn:dicom:uid` identifier value, e.g. "urn:oid:1.2.840..."."""
    return f"urn:oid:{uid}"


def report_identifier_value(study_instance_uid: str, model_version: str) -> str:
    """Stable DiagnosticReport identifier value: one report per (study, model version)."""
    return f"urn:hilum:report:{study_instance_uid}:{model_version}"


def observation_identifier_value(study_instance_uid: str, model_version: str, finding_code: str) -> str:
    """Stable Observation identifier value: one Observation per (study, model version, finding)."""
    return f"urn:hilum:observation:{study_instance_uid}:{model_version}:{finding_code}"


def algorithm_identifier_value(model_name: str, model_version: str) -> str:
    """Stable Device identifier value for an algorithm: "<name>:<version>"."""
    return f"{model_name}:{model_version}"
