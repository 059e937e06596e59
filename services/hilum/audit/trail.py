"""Recording AuditEvents: each is stored in Hilum's FHIR store in the caller's own transaction (so an access and its
record commit together, or neither does) and, where a syslog export is configured, queued for it in the same
transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db.models import AuditOutboxRow
from hilum.common.fhir.audit_event import (
    APPLICATION_ROLE,
    AuditAgent,
    AuditPatient,
    AuditRecord,
    audit_event,
)
from hilum.common.metrics import AUDIT_EVENTS
from hilum.common.settings import FhirSection, HilumSettings
from hilum.common.study import PatientInfo
from hilum.fhir_api.store import store_resource


class AuditUnavailable(RuntimeError):
    """An access refused because its audit record could not be written (the message names the error's type only)."""


@dataclass(frozen=True)
class AuditTrail:
    """Where one of Hilum's services records its events: the service observing (`observer`, e.g. "inference"), the
    site, the naming system of the patient's DICOM PatientID, and whether the syslog export takes the events."""

    observer: str
    site: str = "hilum"
    patient_system: str = FhirSection().patient_identifier_system
    export: bool = False

    def record(self, session: Session, record: AuditRecord) -> str:
        """Store the record's AuditEvent in session (and queue it for export); returns its id."""
        event = audit_event(record, self.observer, self.site)
        store_resource(session, event, record.recorded)
        if self.export:
            session.add(AuditOutboxRow(event_id=event["id"]))
        AUDIT_EVENTS.labels(type=record.kind.name.lower(), outcome=record.outcome.value).inc()
        return str(event["id"])

    def record_now(self, sessions: sessionmaker[Session], record: AuditRecord) -> str:
        """record() in a transaction of its own (an access that changed nothing in the database)."""
        with sessions.begin() as session:
            return self.record(session, record)

    def patient(self, patient: PatientInfo) -> AuditPatient:
        """A study's patient as the audit names it: the DICOM PatientID in the MRN system, with its issuer."""
        return AuditPatient(system=self.patient_system, value=patient.patient_id, issuer=patient.issuer)

    @property
    def itself(self) -> AuditAgent:
        """Hilum's own service as the requestor: what the pipeline does of its own accord."""
        return AuditAgent(user_id=f"hilum-{self.observer}", name=f"Hilum {self.observer}", requestor=True,
                          role=APPLICATION_ROLE)


def audit_trail(settings: HilumSettings, observer: str) -> AuditTrail:
    """The trail of one service as settings describe it."""
    return AuditTrail(observer=observer, site=settings.audit.site,
                      patient_system=settings.fhir.patient_identifier_system, export=bool(settings.audit.syslog_url))
