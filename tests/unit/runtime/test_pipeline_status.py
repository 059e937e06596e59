"""`hilum status` without a study, over a real (SQLite) store and a real Redis: what it counts, and what it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum import cli
from hilum.audit.spool import SPOOL_KEY, AuditSpool
from hilum.audit.trail import AuditTrail
from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db import studies
from hilum.common.db.models import DeliveryRow
from hilum.common.db.session import upgrade_database
from hilum.common.dead_letters import dead_letter_sink
from hilum.common.fhir.audit_event import AuditAgent, AuditKind, AuditRecord
from hilum.common.logs import study_ref
from hilum.common.queue import Stage, create_celery_app, enqueue
from hilum.common.settings import HilumSettings, RedisSection
from hilum.common.study import PatientInfo
from hilum.runtime.pipeline_status import pipeline_status, status_lines
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2
from tests.helpers import record_study

PATIENT = PatientInfo(patient_id="PS-SECRET-MRN", issuer="HOSP", name="STATUS^SECRET", birth_date=None, sex="F")
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def _pipeline(sessions: sessionmaker[Session], redis_url: str) -> None:
    """Six studies: two in flight (one received an hour ago), one reported, one analysed as a prior, two failed (one
    of them dead-lettered at inference); a message queued for priors and a delivery given up on."""
    for uid in ("9.1", "9.2", "9.3", "9.4", "9.5", "9.6"):
        record_study(sessions, f"1.2.826.{uid}", PATIENT, datetime(2026, 12, 7, 9, 0))
    with sessions.begin() as session:
        studies.require_study(session, "1.2.826.9.1").received_at = NOW - timedelta(hours=1)
        studies.require_study(session, "1.2.826.9.2").received_at = NOW - timedelta(minutes=5)
        studies.advance(session, "1.2.826.9.2", study_state.INFERRED)
        studies.advance(session, "1.2.826.9.3", study_state.REPORTED)
        studies.advance(session, "1.2.826.9.4", study_state.ANALYSED)
        studies.fail(session, "1.2.826.9.5", "reporting: bundle invalid")
        session.add(DeliveryRow(study_instance_uid="1.2.826.9.3", model_version="1.0.0", destination="mllp",
                                event="preliminary", status="dead", attempts=6, last_error="timed out"))
    dead_letter_sink(sessions)(Stage.INFERENCE, messages_pb2.StudyReference(study_instance_uid="1.2.826.9.6"),
                               "image unreadable: no pixel data")
    app = create_celery_app(HilumSettings(redis=RedisSection(url=redis_url)))
    enqueue(app, Stage.PRIORS, messages_pb2.StudyFindings(study=messages_pb2.StudyReference(
        study_instance_uid="1.2.826.9.2")))


def test_the_pipeline_at_a_glance(sqlite_sessions: sessionmaker[Session], redis_server: RedisServer,
                                  redis_client: redis_lib.Redis) -> None:
    _pipeline(sqlite_sessions, redis_server.url)
    status = pipeline_status(sqlite_sessions, redis_client, NOW)
    assert status.queued == {"ingestion": 0, "inference": 0, "priors": 1, "reporting": 0, "publishing": 0}
    assert status.studies == {"RECEIVED": 1, "INFERRED": 1, "REPORTED": 1, "ANALYSED": 1, "FAILED": 2}
    assert status.in_flight == 2 and status.oldest_in_flight_s == 3600.0
    assert {f.ref for f in status.failures} == {study_ref("1.2.826.9.6"), study_ref("1.2.826.9.5")}
    assert status.dead_letters == {"inference": 1} and status.dead_deliveries == {"mllp": 1}
    lines = status_lines(status)
    assert lines[0] == "queues: ingestion 0, inference 0, priors 1, reporting 0, publishing 0; 0 in workers' hands"
    assert lines[1] == "studies: RECEIVED 1, INFERRED 1, COMPARED 0, REPORTED 1, ANALYSED 1, FAILED 2"
    assert lines[2] == "in flight: 2; oldest received 60 min ago"
    assert lines[3].startswith("audit trail: 0 events in the doors' spool, 0 waiting for the syslog export")
    assert f"study {study_ref('1.2.826.9.6')}: inference: image unreadable: no pixel data" in "\n".join(lines)
    assert lines[-2].startswith("dead letters waiting: 1 (inference 1; `hilum dead-letters list`")
    assert lines[-1].startswith("deliveries given up on: 1 (mllp 1; ")
    text = "\n".join(lines)  # refs only: no UID, no patient
    assert "1.2.826.9" not in text and "SECRET" not in text


def test_an_idle_pipeline(sqlite_sessions: sessionmaker[Session], redis_client: redis_lib.Redis) -> None:
    redis_client.delete(SPOOL_KEY)
    lines = status_lines(pipeline_status(sqlite_sessions, redis_client, NOW))
    assert [lines[2], *lines[4:]] == ["in flight: 0", "dead letters waiting: 0", "deliveries given up on: 0"]


def test_audit_events_waiting_are_counted(sqlite_sessions: sessionmaker[Session],
                                          redis_client: redis_lib.Redis) -> None:
    redis_client.delete(SPOOL_KEY)
    record = AuditRecord(kind=AuditKind.REST, requestor=AuditAgent(user_id="mirth-engine", requestor=True))
    AuditSpool(redis_client, AuditTrail("fhir-api")).record(record)
    with sqlite_sessions.begin() as session:
        AuditTrail("publishing", export=True).record_all(session, [record, record])
    status = pipeline_status(sqlite_sessions, redis_client, NOW)
    assert (status.audit_spooled, status.audit_unexported) == (1, 2)
    assert "audit trail: 1 events in the doors' spool, 2 waiting for the syslog export" in status_lines(status)[3]


def test_hilum_status_and_dead_letters_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        redis_server: RedisServer, redis_client: redis_lib.Redis) -> None:
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HILUM_REDIS__URL", redis_server.url)
    settings = HilumSettings()
    upgrade_database(settings.database_url)
    _pipeline(open_sessions(settings), redis_server.url)
    assert cli.main(["status"]) == 0
    assert "dead letters waiting: 1 (inference 1;" in capsys.readouterr().out
    assert cli.main(["dead-letters", "list"]) == 0
    [listed] = capsys.readouterr().out.splitlines()
    assert f"inference   study {study_ref('1.2.826.9.6')}  image unreadable: no pixel data" in listed
    assert cli.main(["dead-letters", "replay", "--stage", "priors"]) == 0
    assert capsys.readouterr().out == "0 dead letters handed to their queues again\n"
    assert cli.main(["dead-letters", "replay"]) == 0
    assert capsys.readouterr().out == "1 dead letters handed to their queues again\n"
    assert redis_client.llen(Stage.INFERENCE.value) == 1
    assert cli.main(["dead-letters", "list"]) == 0
    assert capsys.readouterr().out == "no dead letters waiting\n"
    assert cli.main(["dead-letters", "list", "--all"]) == 0
    assert "replayed " in capsys.readouterr().out
    with open_sessions(settings)() as session:
        assert studies.require_study(session, "1.2.826.9.6").state == "RECEIVED"  # it starts again
