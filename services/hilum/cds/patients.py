"""Who the CDS call is about: the EHR's Patient, prefetched or fetched, and its MRNs in the configured system.

context.patientId is the EHR's FHIR id, never an MRN. Results are found by the Patient's identifiers whose
system is the one DICOM PatientIDs belong to (HILUM_FHIR__PATIENT_IDENTIFIER_SYSTEM): system and value
together, never the value alone and never a name.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from fhir.resources.R4B.patient import Patient

from hilum.cds.hooks import HookRequest, fhir_patient


class PatientUnavailable(Exception):
    """The hook needs the Patient, and neither the prefetch nor the EHR's FHIR server gave it."""


def mrns(patient: Patient, system: str) -> list[str]:
    """The Patient's identifier values in `system`; an identifier in another system (or without one) is never
    matched: the same value in two systems is two patients."""
    return list(dict.fromkeys(i.value for i in patient.identifier or [] if i.system == system and i.value))


def fetch_patient(body: HookRequest, timeout_s: float = 5.0) -> Patient:
    """GET {fhirServer}/Patient/{context.patientId} with the request's fhirAuthorization bearer token, which is
    used for this one call only: never stored, queued or logged. Raises PatientUnavailable.
    """
    if body.fhirServer is None:
        raise PatientUnavailable("no prefetched Patient and no fhirServer to fetch it from")
    headers = {"Accept": "application/fhir+json"}
    token = (body.fhirAuthorization or {}).get("access_token")
    if isinstance(token, str) and token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{body.fhirServer.rstrip('/')}/Patient/{quote(body.context.patientId, safe='')}"
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):
        raise PatientUnavailable("the FHIR server could not be reached") from None
    if response.status_code != 200:
        raise PatientUnavailable(f"the FHIR server answered {response.status_code}")
    try:
        patient = fhir_patient(response.json())
    except ValueError:
        raise PatientUnavailable("the FHIR server's answer is not a FHIR Patient") from None
    if patient.id != body.context.patientId:
        raise PatientUnavailable("the FHIR server returned another Patient")
    return patient


def trusted_prefetch(body: HookRequest) -> Patient | None:
    """The prefetched Patient when it is context.patientId's; None when there is none or it has another id (it
    would be another person's), so that the Patient is fetched instead. A prefetch without an id is trusted:
    the EHR filled Patient/{{context.patientId}}."""
    patient = body.prefetched_patient()
    return patient if patient is not None and patient.id in (None, body.context.patientId) else None


def patient_of(body: HookRequest) -> Patient:
    """The call's Patient: prefetched, else fetched from fhirServer. Raises PatientUnavailable."""
    return trusted_prefetch(body) or fetch_patient(body)
