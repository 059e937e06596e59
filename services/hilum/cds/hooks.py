"""The CDS Hooks 2.0 request bodies Hilum accepts, one model per hook, validated before any handler runs.

Only what Hilum reads is modelled strictly (the patient id, the prefetched Patient, the draft orders
Bundle); anything else the EHR sends is accepted and ignored. fhirAuthorization is accepted for the one
FHIR call it allows and is never stored, queued or logged.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fhir.resources.R4B.patient import Patient
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hilum.cds.services import Hook


def fhir_patient(data: Any) -> Patient:
    """`data` as a FHIR Patient; ValueError unless it is JSON naming resourceType Patient and valid as one (the
    FHIR models would fill in a missing resourceType, so it is checked first)."""
    if not isinstance(data, dict) or data.get("resourceType") != "Patient":
        raise ValueError("not a FHIR Patient (resourceType must be Patient)")
    try:
        return Patient.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"not a valid FHIR Patient ({error.error_count()} problems)") from None


class PatientPrefetch(BaseModel):
    """The prefetch every Hilum service asks for: the FHIR Patient (its identifiers carry the MRN)."""

    model_config = ConfigDict(extra="allow")

    patient: dict[str, Any] | None = None

    @field_validator("patient")
    @classmethod
    def _is_fhir_patient(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Refuse a prefetch.patient that is not a FHIR Patient."""
        if value is not None:
            fhir_patient(value)
        return value


class BundleEntry(BaseModel):
    """One entry of the draftOrders Bundle."""

    model_config = ConfigDict(extra="allow")

    resource: dict[str, Any] | None = None


class DraftOrders(BaseModel):
    """context.draftOrders: a FHIR Bundle of the orders being written."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Bundle"]
    entry: list[BundleEntry] = Field(default_factory=list)

    def resources(self) -> list[dict[str, Any]]:
        """The resources in the Bundle's entries."""
        return [entry.resource for entry in self.entry if entry.resource is not None]


class PatientContext(BaseModel):
    """Context every hook carries; patientId is the EHR's FHIR Patient id, never an MRN."""

    model_config = ConfigDict(extra="allow")

    userId: str | None = Field(default=None, min_length=1)
    patientId: str = Field(min_length=1)
    encounterId: str | None = Field(default=None, min_length=1)


class OrderSignContext(PatientContext):
    """order-sign: the orders about to be signed."""

    draftOrders: DraftOrders


class OrderSelectContext(OrderSignContext):
    """order-select: the orders being written and which of them were just selected ("ServiceRequest/id")."""

    selections: list[str] = Field(min_length=1)


class EncounterDischargeContext(PatientContext):
    """encounter-discharge: the encounter the patient is being discharged from."""

    encounterId: str = Field(min_length=1)


class HookRequest(BaseModel):
    """What every CDS Hooks 2.0 call carries."""

    hook: Hook
    hookInstance: UUID
    fhirServer: str | None = Field(default=None, min_length=1)
    fhirAuthorization: dict[str, Any] | None = None
    context: PatientContext
    prefetch: PatientPrefetch | None = None

    def prefetched_patient(self) -> Patient | None:
        """The prefetched FHIR Patient, or None when the EHR sent none."""
        if self.prefetch is None or self.prefetch.patient is None:
            return None
        return fhir_patient(self.prefetch.patient)


class PatientViewRequest(HookRequest):
    """A patient-view call."""

    hook: Literal[Hook.PATIENT_VIEW]


class OrderSelectRequest(HookRequest):
    """An order-select call."""

    hook: Literal[Hook.ORDER_SELECT]
    context: OrderSelectContext


class OrderSignRequest(HookRequest):
    """An order-sign call."""

    hook: Literal[Hook.ORDER_SIGN]
    context: OrderSignContext


class EncounterDischargeRequest(HookRequest):
    """An encounter-discharge call."""

    hook: Literal[Hook.ENCOUNTER_DISCHARGE]
    context: EncounterDischargeContext
