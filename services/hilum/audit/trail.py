"""Recording AuditEvents: each is stored in Hilum's FHIR store in the caller's own transaction (so an access and its
record commit together, or neither does) and, where a syslog export is configured, queued for it in the same
transaction. The pipeline's stages record this way; the HTTP doors push onto the spool (spool.py), which the
assembler's audit thread stores the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert
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
from hilum.fhir_api.store import store_new_resources


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
        return self.record_all(session, [record])[0]

    def record_all(self, session: Session, records: list[AuditRecord]) -> list[str]:
        """record() for several records at once (fewer statements); returns their ids, in order."""
        events = [self.event(record) for record in records]
        self.store_events(session, events, datetime.now(UTC))
        for record in records:
            self.count(record)
        return [str(event["id"]) for event in events]

    def event(self, record: AuditRecord) -> dict[str, Any]:
        """The record's AuditEvent as this service observes it (a new id)."""
        return audit_event(record, self.observer, self.site)

    def store_events(self, session: Session, events: list[dict[str, Any]], now: datetime) -> None:
        """Store new AuditEvents in session, and queue them for export where there is one."""
        store_new_resources(session, events, now)
        if self.export and events:
            session.connection().execute(insert(cast(Table, AuditOutboxRow.__table__)), [
                {"event_id": event["id"], "created_at": now} for event in events])

    @staticmethod
    def count(record: AuditRecord) -> None:
        """Count a recorded event (hilum_audit_events_total)."""
        AUDIT_EVENTS.labels(type=record.kind.name.lower(), outcome=record.outcome.value).inc()

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
