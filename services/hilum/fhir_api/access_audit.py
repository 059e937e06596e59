"""The AuditEvent of each FHIR API read and search (IHE BALP's shape): the client, the resources served, the patients
they belong to, and for a search its query."""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastapi import Request

from hilum.common.fhir.audit_event import (
    SEARCH,
    AuditAgent,
    AuditKind,
    AuditOutcome,
    AuditPatient,
    AuditRecord,
    Code,
)
from hilum.fhir_api.store import patient_references

OPEN_MODE_CLIENT = "open-mode-loopback"  # the requestor of a call made without a token (the embedded stack only)


def _patient(what: object) -> AuditPatient | None:
    """The patient a Reference names (a stored Patient, or an MRN identifier), or None when it names no patient."""
    if not isinstance(what, dict) or what.get("type", "Patient") != "Patient":
        return None
    reference = what.get("reference")
    reference = reference if isinstance(reference, str) and reference.startswith("Patient/") else ""
    identifier = what.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        system = identifier.get("system")
        return AuditPatient(system=system if isinstance(system, str) else "", value=identifier["value"],
                            reference=reference)
    return AuditPatient(reference=reference) if reference else None


def patients_of(texts: Iterable[str]) -> tuple[AuditPatient, ...]:
    """The distinct patients the served resources (JSON texts) belong to: a Patient itself, the subject or patient
    of the others, the patient entities of an AuditEvent."""
    found: dict[AuditPatient, None] = {}
    for text in texts:
        resource = json.loads(text)
        candidates = ([{"reference": f"Patient/{resource.get('id')}"}] if resource.get("resourceType") == "Patient"
                      else patient_references(resource))
        for candidate in candidates:
            if (patient := _patient(candidate)) is not None:
                found[patient] = None
    return tuple(found)


def access_record(request: Request, interaction: Code, client_id: str, *, outcome: AuditOutcome = AuditOutcome.SUCCESS,
                  outcome_text: str = "", resources: tuple[str, ...] = (), patients: tuple[AuditPatient, ...] = (),
                  query: str = "") -> AuditRecord:
    """The record of one call: `interaction` is READ, VREAD or SEARCH; `client_id` the token's client ("": open
    mode)."""
    requestor = AuditAgent(user_id=client_id or OPEN_MODE_CLIENT, requestor=True,
                           address=request.client.host if request.client else "")
    return AuditRecord(kind=AuditKind.REST, subtypes=(interaction,), action="E" if interaction == SEARCH else "R",
                       requestor=requestor, outcome=outcome, outcome_text=outcome_text, resources=resources,
                       patients=patients, query=query)
