"""The syslog export against real loopback audit repositories: TCP, TLS with ATNA's mutual authentication, UDP; a
repository that is down keeps the events queued until it is back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.export import AuditExporter
from hilum.audit.syslog import SyslogError, SyslogSender
from hilum.audit.trail import AuditTrail
from hilum.common.db.models import AuditOutboxRow
from hilum.common.fhir.audit_event import AuditAgent, AuditKind, AuditPatient, AuditRecord
from hilum.common.polling import wait_until
from tests.syslog_receiver import SyslogReceiver
from tests.unit.common.tls_certs import TlsFiles, write_tls_files

TRAIL = AuditTrail("ingestion", site="St Elsewhere", export=True)


def _record(n: int) -> AuditRecord:
    return AuditRecord(kind=AuditKind.IMPORT, requestor=AuditAgent(user_id=f"MODALITY{n}", requestor=True),
                       patients=(AuditPatient(system="urn:oid:1.2.3", value=f"MRN-{n}"),),
                       study_uids=(f"1.2.840.{n}",), recorded=datetime(2026, 12, 7, 9, 0, n, tzinfo=UTC))


def _queue(sessions: sessionmaker[Session], count: int, trail: AuditTrail = TRAIL) -> list[str]:
    with sessions.begin() as session:
        return [trail.record(session, _record(n)) for n in range(count)]


def _queued(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditOutboxRow)) or 0


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("syslog-tls"))


def test_events_reach_a_tcp_repository_as_rfc_5424_dicom_audit_messages(sqlite_sessions: sessionmaker[Session]) -> None:
    _queue(sqlite_sessions, 3)
    with SyslogReceiver("tcp") as repository:
        exporter = AuditExporter(sqlite_sessions, SyslogSender(repository.url), batch=2, hostname="hilum-host")
        assert exporter.export_round() == 2 and exporter.export_round() == 1 and exporter.export_round() == 0
        wait_until(lambda: len(repository.received()) == 3, timeout_s=5, interval_s=0.05, what="three messages")
    assert repository.errors == []
    first = repository.received()[0]
    assert (first.pri, first.msgid, first.app_name, first.hostname) == (85, "IHE+RFC-3881", "hilum", "hilum-host")
    assert first.timestamp == "2026-12-07T09:00:00.000Z"
    assert [m.audit_message.find("ActiveParticipant").attrib["UserID"] for m in repository.received()] == [  # type: ignore[union-attr]
        "MODALITY0", "MODALITY1", "MODALITY2"]
    assert _queued(sqlite_sessions) == 0


def test_tls_with_a_client_certificate_as_atna_asks(sqlite_sessions: sessionmaker[Session], tls: TlsFiles) -> None:
    _queue(sqlite_sessions, 2)
    with SyslogReceiver("tls", cert=tls.server_cert, key=tls.server_key, client_ca=tls.ca) as repository:
        without_cert = AuditExporter(sqlite_sessions, SyslogSender(repository.url.replace("127.0.0.1", "localhost"),
                                                                   ca_file=tls.ca))
        with pytest.raises(SyslogError):  # the repository wants the node's certificate (TLS 1.3: after the handshake)
            without_cert.export_round()
        assert _queued(sqlite_sessions) == 2
        sender = SyslogSender(f"tls://localhost:{repository.port}", ca_file=tls.ca, cert_file=tls.client_cert,
                              key_file=tls.client_key)
        assert AuditExporter(sqlite_sessions, sender).export_round() == 2
        wait_until(lambda: len(repository.received()) == 2, timeout_s=5, interval_s=0.05, what="two messages")
    assert _queued(sqlite_sessions) == 0


def test_a_repository_not_trusted_is_never_sent_to(sqlite_sessions: sessionmaker[Session], tls: TlsFiles,
                                                   tmp_path: Path) -> None:
    _queue(sqlite_sessions, 1)
    stranger = write_tls_files(tmp_path / "other", ca_name="Another CA")
    with SyslogReceiver("tls", cert=stranger.server_cert, key=stranger.server_key) as repository:
        with pytest.raises(SyslogError):
            AuditExporter(sqlite_sessions, SyslogSender(f"tls://localhost:{repository.port}", ca_file=tls.ca)
                          ).export_round()
    assert repository.received() == [] and _queued(sqlite_sessions) == 1


def test_udp_sends_a_datagram_per_event(sqlite_sessions: sessionmaker[Session]) -> None:
    _queue(sqlite_sessions, 2)
    with SyslogReceiver("udp") as repository:
        assert AuditExporter(sqlite_sessions, SyslogSender(repository.url)).export_round() == 2
        wait_until(lambda: len(repository.received()) == 2, timeout_s=5, interval_s=0.05, what="two datagrams")
    assert repository.errors == []

