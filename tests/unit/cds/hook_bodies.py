"""CDS Hooks request bodies as an EHR sends them, for the CDS service tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hilum.cds.services import Hook, service_id

PUBLIC_URL = "http://testserver"  # TestClient's base URL: the address this EHR calls
NOW = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"  # the system DICOM PatientIDs belong to, as configured
EHR_PATIENT_ID = "ehr-123"
CHEST_CT_LOINC = {"system": "http://loinc.org", "code": "24627-2", "display": "Chest CT"}
IMAGING = {"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}


def service_url(hook: Hook) -> str:
    """The path of Hilum's service for `hook`."""
    return f"/cds-services/{service_id(hook)}"


def patient(*identifiers: tuple[str, str], fhir_id: str = EHR_PATIENT_ID) -> dict[str, Any]:
    """A FHIR Patient with these (system, value) identifiers."""
    return {"resourceType": "Patient", "id": fhir_id,
            "identifier": [{"system": system, "value": value} for system, value in identifiers]}


def prefetched(*identifiers: tuple[str, str]) -> dict[str, Any]:
    """prefetch holding a FHIR Patient with these (system, value) identifiers."""
    return {"patient": patient(*identifiers)}


def service_request(order_id: str, *, code: dict[str, Any] | None = None, category: dict[str, Any] | None = None,
                    text: str | None = None) -> dict[str, Any]:
    """A draft ServiceRequest for the EHR's patient."""
    resource: dict[str, Any] = {"resourceType": "ServiceRequest", "id": order_id, "status": "draft",
                                "intent": "order", "subject": {"reference": f"Patient/{EHR_PATIENT_ID}"}}
    if code or text:
        resource["code"] = {**({"coding": [code]} if code else {}), **({"text": text} if text else {})}
    if category:
        resource["category"] = [{"coding": [category]}]
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    """draftOrders: a Bundle of these resources."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def hook_request(hook: Hook = Hook.PATIENT_VIEW, patient_id: str = EHR_PATIENT_ID, *,
                 context: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal valid request for `hook` (order hooks get one chest X-ray imaging order, selected); `context`
    adds to or replaces context fields, `extra` adds top-level fields (prefetch, fhirServer, ...)."""
    base: dict[str, Any] = {"userId": "Practitioner/1", "patientId": patient_id}
    if hook in (Hook.ORDER_SELECT, Hook.ORDER_SIGN):
        base["draftOrders"] = bundle(service_request("sr-1", category=IMAGING, text="XR chest 2 views"))
    if hook == Hook.ORDER_SELECT:
        base["selections"] = ["ServiceRequest/sr-1"]
    if hook == Hook.ENCOUNTER_DISCHARGE:
        base["encounterId"] = "enc-1"
    return {"hook": hook.value, "hookInstance": str(uuid.uuid4()), "context": {**base, **(context or {})}, **extra}
