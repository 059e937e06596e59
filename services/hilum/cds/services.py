"""The CDS services Hilum offers, one per hook, as the discovery endpoint lists them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class Hook(StrEnum):
    """The CDS Hooks 2.0 hooks Hilum answers."""

    PATIENT_VIEW = "patient-view"
    ORDER_SELECT = "order-select"
    ORDER_SIGN = "order-sign"
    ENCOUNTER_DISCHARGE = "encounter-discharge"


class ServiceDefinition(BaseModel):
    """One entry of the discovery response."""

    hook: Hook
    title: str
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class Discovery(BaseModel):
    """The discovery response: every CDS service this server offers."""

    services: list[ServiceDefinition]


# Every hook needs the FHIR Patient: its identifiers carry the MRN that DICOM PatientIDs are matched on.
PATIENT_PREFETCH = {"patient": "Patient/{{context.patientId}}"}
USAGE = ("Calls must carry a JWT from an issuer listed in HILUM_CDS__TRUSTED_ISSUERS. Results come from the "
         "model version each card names; demo weights are labelled as such on every card.")


def _service(hook: Hook, service_id: str, title: str, description: str) -> ServiceDefinition:
    """A service for `hook` that prefetches the Patient."""
    return ServiceDefinition(hook=hook, id=service_id, title=title, description=description,
                             prefetch=dict(PATIENT_PREFETCH), usageRequirements=USAGE)


SERVICES: dict[Hook, ServiceDefinition] = {
    definition.hook: definition
    for definition in (
        _service(Hook.PATIENT_VIEW, "hilum-cxr-patient-view", "Hilum chest X-ray AI",
                 "Preliminary AI findings and change since prior for the patient's latest chest radiograph, "
                 "as drafted by Hilum."),
        _service(Hook.ORDER_SELECT, "hilum-cxr-order-select", "Hilum chest X-ray AI for imaging orders",
                 "When an imaging or referral order is selected: the patient's recent chest X-ray AI findings "
                 "and change since prior, and a chest CT suggestion for a new nodule or mass."),
        _service(Hook.ORDER_SIGN, "hilum-cxr-order-sign", "Hilum chest X-ray AI before signing orders",
                 "Before imaging or referral orders are signed: the patient's recent chest X-ray AI findings "
                 "and change since prior, and a chest CT suggestion for a new nodule or mass."),
        _service(Hook.ENCOUNTER_DISCHARGE, "hilum-cxr-encounter-discharge",
                 "Hilum unacknowledged critical chest X-ray findings",
                 "Warns at discharge when the patient's latest chest X-ray has a critical AI finding that no "
                 "clinician has acknowledged (feedback on its card)."),
    )
}
DISCOVERY = Discovery(services=list(SERVICES.values()))


def service_id(hook: Hook) -> str:
    """The id under which Hilum serves `hook`."""
    return SERVICES[hook].id
