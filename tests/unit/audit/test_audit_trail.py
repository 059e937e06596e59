"""Recording in a stage's own transaction: the event stored with the work, or neither; queued for export only where
one is configured."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.trail import AuditTrail, audit_trail
from hilum.common.db.models import AuditOutboxRow
from hilum.common.fhir.audit_event import AuditKind, AuditRecord
from hilum.common.settings import AuditSection, FhirSection, HilumSettings
from hilum.common.study import PatientInfo
from tests.helpers import audit_events, audited_patient_ids

PATIENT = PatientInfo(patient_id="MRN-7", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")


def _queued(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditOutboxRow)) or 0


def test_an_event_commits_with_the_work_or_not_at_all(sqlite_sessions: sessionmaker[Session]) -> None:
    trail = AuditTrail("inference", site="St Elsewhere", patient_system="urn:oid:1.2.3")
    record = AuditRecord(kind=AuditKind.INFERENCE, requestor=trail.itself, patients=(trail.patient(PATIENT),),
                         study_uids=("1.2.840.9",))
    with pytest.raises(RuntimeError), sqlite_sessions.begin() as session:
        trail.record(session, record)
        raise RuntimeError("the work failed")
    assert audit_events(sqlite_sessions) == []
    with sqlite_sessions.begin() as session:
        event_id = trail.record(session, record)
    [event] = audit_events(sqlite_sessions)
    assert event["id"] == event_id and event["meta"]["versionId"] == "1"
    assert audited_patient_ids(event) == ["MRN-7"]
    assert event["entity"][0]["what"]["identifier"] == {"system": "urn:oid:1.2.3", "value": "MRN-7",
                                                        "assigner": {"display": "HOSP"}}
    assert event["agent"][0] == {"type": event["agent"][0]["type"], "who": {"identifier": {"value": "hilum-inference"},
                                 "display": "Hilum inference"}, "requestor": True, "name": "Hilum inference"}
    assert _queued(sqlite_sessions) == 0  # no export configured


def test_with_an_export_each_event_is_queued_in_its_transaction(sqlite_sessions: sessionmaker[Session]) -> None:
    settings = HilumSettings(audit=AuditSection(site="St Elsewhere", syslog_url="tls://siem.example:6514"),
                             fhir=FhirSection(patient_identifier_system="urn:oid:9.9"))
    trail = audit_trail(settings, "publishing")
    assert (trail.site, trail.patient_system, trail.export) == ("St Elsewhere", "urn:oid:9.9", True)
    with sqlite_sessions.begin() as session:
        trail.record_all(session, [AuditRecord(kind=AuditKind.EXPORT, requestor=trail.itself) for _ in range(3)])
    assert len(audit_events(sqlite_sessions, "110106")) == 3 and _queued(sqlite_sessions) == 3
