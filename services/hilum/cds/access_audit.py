"""The AuditEvent of a CDS Hooks call that read a patient's result: the EHR that called, the patient, the hook, and
the report shown (if any)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request

from hilum.cds.hooks import HookRequest
from hilum.cds.services import service_id
from hilum.common.cds_view import CdsView
from hilum.common.fhir.audit_event import (
    CDS_SUBTYPE,
    TREATMENT,
    AuditAgent,
    AuditKind,
    AuditPatient,
    AuditRecord,
)


def patient_record(body: HookRequest, request: Request, mrn_system: str, patient_ids: Sequence[str],
                   shown: CdsView | None) -> AuditRecord:
    """The record of one call: the requestor is the JWT's issuer (set by authorize), the patients are the MRNs the
    call's Patient carries in Hilum's system, the report is the one the cards were built from."""
    issuer = str(getattr(request.state, "cds_issuer", "") or "unauthenticated")
    requestor = AuditAgent(user_id=issuer, requestor=True, address=request.client.host if request.client else "")
    details = (("hook", service_id(body.hook)), ("ehr-patient-id", body.context.patientId),
               ("result", "shown" if shown is not None else "none"))
    return AuditRecord(
        kind=AuditKind.PATIENT_RECORD, subtypes=(CDS_SUBTYPE,), requestor=requestor, purpose=(TREATMENT,),
        patients=tuple(AuditPatient(system=mrn_system, value=pid) for pid in patient_ids),
        study_uids=(shown.study_instance_uid,) if shown is not None else (),
        resources=(f"DiagnosticReport/{shown.diagnostic_report_id}",) if shown is not None else (),
        details=details,
    )
