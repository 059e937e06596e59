"""The syslog export: AuditEvents queued in the audit outbox, sent to the audit repository as DICOM audit messages in
RFC 5424 messages (IHE ATNA ITI-20), and taken off the outbox only once sent.

A round takes the oldest queued events (rows locked, so that several exporters never send one twice on PostgreSQL),
sends them, and deletes them in the same transaction: a round that fails leaves them queued for the next. An event is
therefore sent at least once (twice only when the database fails between the send and the commit).
"""

from __future__ import annotations

import json
import logging
import os
import socket

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.dicom_message import dicom_audit_message
from hilum.audit.syslog import SyslogSender, syslog_message
from hilum.common.db.models import AuditOutboxRow
from hilum.common.metrics import AUDIT_EXPORTED
from hilum.common.settings import AuditSection
from hilum.fhir_api.tables import FhirResourceRow

log = logging.getLogger(__name__)

APP_NAME = "hilum"


class AuditExporter:
    """Sends the audit outbox to one syslog sender, a batch per round."""

    def __init__(self, sessions: sessionmaker[Session], sender: SyslogSender, batch: int = 200,
                 hostname: str | None = None) -> None:
        self._sessions = sessions
        self._sender = sender
        self._batch = batch
        self._hostname = hostname or socket.getfqdn()
        self._procid = str(os.getpid())

    def export_round(self) -> int:
        """Send up to one batch of queued events and take them off the outbox; returns how many were taken off (0:
        none queued). Raises SyslogError when the repository cannot be reached (the events stay queued)."""
        with self._sessions.begin() as session:
            queued = list(session.scalars(select(AuditOutboxRow).order_by(AuditOutboxRow.seq).limit(self._batch)
                                          .with_for_update(skip_locked=True)))
            if not queued:
                return 0
            texts = dict(session.execute(select(FhirResourceRow.resource_id, FhirResourceRow.resource).where(
                FhirResourceRow.resource_type == "AuditEvent",
                FhirResourceRow.resource_id.in_([row.event_id for row in queued]))).all())
            messages = [self.message(json.loads(texts[row.event_id])) for row in queued if texts.get(row.event_id)]
            sent = self._sender.send(messages)
            session.execute(delete(AuditOutboxRow).where(AuditOutboxRow.seq.in_([row.seq for row in queued])))
        if sent < len(messages):
            log.error("audit events too large for a UDP datagram were not exported",
                      extra={"count": len(messages) - sent})
        AUDIT_EXPORTED.inc(sent)
        return len(queued)

    def message(self, event: dict[str, object]) -> bytes:
        """The syslog message of one stored AuditEvent."""
        return syslog_message(dicom_audit_message(event), timestamp=str(event.get("recorded", "")),
                              hostname=self._hostname, app_name=APP_NAME, procid=self._procid)


def exporter_from_settings(section: AuditSection, sessions: sessionmaker[Session]) -> AuditExporter:
    """The exporter the audit section describes (its syslog_url must be set)."""
    sender = SyslogSender(section.syslog_url, section.syslog_timeout_s, section.tls_ca_file,
                          section.tls_cert_file, section.tls_key_file)
    return AuditExporter(sessions, sender, section.export_batch)
