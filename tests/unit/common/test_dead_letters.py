"""The dead-letter sink on a real (SQLite) store: the message is kept for replay, its study fails with why; replay
hands it to its queue on a real Redis once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis as redis_lib
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import records, studies
from hilum.common.db.models import DeadLetterRow
from hilum.common.dead_letters import dead_letter_sink, replay
from hilum.common.queue import Stage, create_celery_app, send_payload
from hilum.common.settings import HilumSettings, RedisSection
from hilum.common.study import PatientInfo
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2
from tests.helpers import record_study

PATIENT = PatientInfo(patient_id="D1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")


def _dead_letters(sessions: sessionmaker[Session]) -> list[DeadLetterRow]:
    with sessions() as session:
        return list(session.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id)))


def _study_row(sessions: sessionmaker[Session], uid: str) -> tuple[str, str]:
    with sessions() as session:
        row = studies.get_study(session, uid)
        assert row is not None
        return row.state, row.error


def test_a_dead_letter_is_recorded_and_its_study_failed_with_the_reason(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    record_study(sqlite_sessions, "71.1", PATIENT, datetime(2025, 1, 1), view_positions=("PA",))
    message = messages_pb2.StudyReference(study_instance_uid="71.1", frontal_object_key="dicom/71.1/1.dcm")
    dead_letter_sink(sqlite_sessions)(Stage.INFERENCE, message, "image unreadable: no pixel data")

    [row] = _dead_letters(sqlite_sessions)
    assert (row.stage, row.study_instance_uid, row.error) == ("inference", "71.1", "image unreadable: no pixel data")
    assert messages_pb2.StudyReference.FromString(row.payload) == message
    assert _study_row(sqlite_sessions, "71.1") == ("FAILED", "inference: image unreadable: no pixel data")


def test_the_study_uid_is_found_in_each_stage_message(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "71.2", PATIENT, datetime(2025, 1, 1))
    findings = messages_pb2.StudyFindings(study=messages_pb2.StudyReference(study_instance_uid="71.2"))
    dead_letter_sink(sqlite_sessions)(Stage.REPORTING, messages_pb2.PriorComparison(current=findings),
                                      "retries exhausted: Redis down")
    [row] = _dead_letters(sqlite_sessions)
    assert row.study_instance_uid == "71.2"
    assert _study_row(sqlite_sessions, "71.2") == ("FAILED", "reporting: retries exhausted: Redis down")


def test_a_reported_study_keeps_its_report(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "71.3", PATIENT, datetime(2025, 1, 1))
    with sqlite_sessions.begin() as session:
        for reached in (study_state.INFERRED, study_state.COMPARED, study_state.REPORTED):
            studies.advance(session, "71.3", reached)
    findings = messages_pb2.StudyFindings(study=messages_pb2.StudyReference(study_instance_uid="71.3"))
    dead_letter_sink(sqlite_sessions)(Stage.PRIORS, findings, "retries exhausted: late redelivery")

    [row] = _dead_letters(sqlite_sessions)
    assert row.stage == "priors" and row.study_instance_uid == "71.3"
    assert _study_row(sqlite_sessions, "71.3") == ("REPORTED", "")


def test_a_message_of_no_study_is_still_kept(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "71.4", PATIENT, datetime(2025, 1, 1))
    spooled = messages_pb2.SpooledInstances(spool_keys=["spool/a.dcm"])
    dead_letter_sink(sqlite_sessions)(Stage.INGESTION, spooled, "retries exhausted: disk full")

    [row] = _dead_letters(sqlite_sessions)
    assert (row.stage, row.study_instance_uid) == ("ingestion", "")
    assert messages_pb2.SpooledInstances.FromString(row.payload) == spooled
    assert _study_row(sqlite_sessions, "71.4") == ("RECEIVED", "")


def test_a_study_not_in_the_store_is_recorded_without_failing(sqlite_sessions: sessionmaker[Session]) -> None:
    message = messages_pb2.StudyReference(study_instance_uid="71.404")
    dead_letter_sink(sqlite_sessions)(Stage.INFERENCE, message, "study not found")
    [row] = _dead_letters(sqlite_sessions)
    assert row.study_instance_uid == "71.404"
    with sqlite_sessions() as session:
        assert studies.get_study(session, "71.404") is None


def test_each_dead_letter_is_counted_for_its_stage(sqlite_sessions: sessionmaker[Session]) -> None:
    def count() -> float:
        return REGISTRY.get_sample_value("hilum_dead_letters_total", {"stage": "priors"}) or 0.0

    before = count()
    message = messages_pb2.StudyReference(study_instance_uid="71.5")
    dead_letter_sink(sqlite_sessions)(Stage.PRIORS, message, "retries exhausted: gone")
    dead_letter_sink(sqlite_sessions)(Stage.PRIORS, message, "retries exhausted: gone again")
    assert count() == before + 2


def _settings(redis_url: str) -> HilumSettings:
    return HilumSettings(redis=RedisSection(url=redis_url))


def test_replay_hands_each_waiting_letter_to_its_queue_once_and_restarts_its_study(
        sqlite_sessions: sessionmaker[Session], redis_server: RedisServer, redis_client: redis_lib.Redis) -> None:
    record_study(sqlite_sessions, "72.1", PATIENT, datetime(2025, 1, 1), view_positions=("PA",))
    sink = dead_letter_sink(sqlite_sessions)
    reference = messages_pb2.StudyReference(study_instance_uid="72.1", frontal_object_key="dicom/72.1/1.dcm")
    sink(Stage.INFERENCE, reference, "retries exhausted: Triton unavailable")
    sink(Stage.INGESTION, messages_pb2.SpooledInstances(spool_keys=["spool/b.dcm"]), "retries exhausted: disk full")
    app = create_celery_app(_settings(redis_server.url))

    def send(stage: Stage, payload: bytes, uid: str) -> None:
        send_payload(app, stage, payload, "dead letter", uid)

    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    first, second = (row.id for row in _dead_letters(sqlite_sessions))
    assert replay(sqlite_sessions, send, now, stage=Stage.INFERENCE) == [first]
    [queued] = redis_client.lrange(Stage.INFERENCE.value, 0, -1)
    assert b"hilum.inference.run" in queued and b"<dead letter study_ref=" in queued
    assert _study_row(sqlite_sessions, "72.1")[0] == "RECEIVED"  # FAILED for it, it starts again
    assert redis_client.llen(Stage.INGESTION.value) == 0
    told: list[tuple[int, int]] = []
    assert replay(sqlite_sessions, send, now, progress=lambda done, total: told.append((done, total))) == [second]
    assert told == [(1, 1)]  # the one left; the first is not sent twice
    assert replay(sqlite_sessions, send, now) == []
    assert redis_client.llen(Stage.INFERENCE.value) == 1 and redis_client.llen(Stage.INGESTION.value) == 1
    with sqlite_sessions() as session:
        assert [row.replayed_at is not None for row in records.dead_letters(session, include_replayed=True)] == [
            True, True]


def test_a_broker_that_refuses_leaves_the_letter_waiting(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "72.2", PATIENT, datetime(2025, 1, 1))
    dead_letter_sink(sqlite_sessions)(Stage.PRIORS, messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid="72.2")), "retries exhausted")

    def refuse(stage: Stage, payload: bytes, uid: str) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        replay(sqlite_sessions, refuse, datetime(2026, 12, 7, tzinfo=UTC))
    with sqlite_sessions() as session:
        [waiting] = records.dead_letters(session)
        assert waiting.replayed_at is None
    assert _study_row(sqlite_sessions, "72.2")[0] == "FAILED"
