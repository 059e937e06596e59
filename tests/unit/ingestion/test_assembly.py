"""The assembler against a real store and a real Redis: due studies are handed on with their views, a
broker outage keeps them due, an arrival during the handoff keeps the study due for a second one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import studies
from hilum.common.queue import Stage, create_celery_app, enqueue
from hilum.common.settings import HilumSettings, RedisSection
from hilum.common.study import PatientInfo
from hilum.ingestion.assembly import Assembler, study_reference
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2
from tests.helpers import record_study

PATIENT = PatientInfo(patient_id="P1", issuer="", name="", birth_date=None, sex="")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _due(sessions: sessionmaker[Session], uid: str, at: datetime) -> None:
    with sessions.begin() as session:
        studies.mark_due(session, uid, at)


def _is_due(sessions: sessionmaker[Session], uid: str) -> bool:
    with sessions() as session:
        return studies.require_study(session, uid).ready_at is not None


def test_due_studies_are_handed_on_once_with_their_views(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "1.1", PATIENT, None, view_positions=("LL", "PA"))
    record_study(sqlite_sessions, "2.2", PATIENT, None, view_positions=("AP",))
    record_study(sqlite_sessions, "3.3", PATIENT, None, view_positions=("PA",))
    _due(sqlite_sessions, "1.1", NOW - timedelta(seconds=1))
    _due(sqlite_sessions, "2.2", NOW)
    _due(sqlite_sessions, "3.3", NOW + timedelta(seconds=5))  # still in its stability window
    handed: list[messages_pb2.StudyReference] = []
    assembler = Assembler(sqlite_sessions, handed.append, clock=lambda: NOW)
    assert assembler.hand_on_due() == 2
    assert [r.study_instance_uid for r in handed] == ["1.1", "2.2"]
    assert handed[0].frontal_object_key == "dicom/1.1/2.dcm" and handed[0].lateral_object_key == "dicom/1.1/1.dcm"
    assert handed[1].lateral_object_key == "" and handed[0].received_at.seconds > 0
    assert assembler.hand_on_due() == 0 and len(handed) == 2
    assert _is_due(sqlite_sessions, "3.3") and not _is_due(sqlite_sessions, "1.1")


def test_a_broker_outage_keeps_studies_due(sqlite_sessions: sessionmaker[Session], redis_client: redis_lib.Redis,
                                           redis_server: RedisServer) -> None:
    record_study(sqlite_sessions, "4.4", PATIENT, None, view_positions=("PA",))
    _due(sqlite_sessions, "4.4", NOW)
    down = create_celery_app(HilumSettings(redis=RedisSection(url=f"redis://127.0.0.1:{free_port()}/0")))
    down.conf.broker_transport_options = {**down.conf.broker_transport_options, "max_retries": 0}
    with pytest.raises(Exception):  # noqa: B017 (kombu raises its own connection errors)
        Assembler(sqlite_sessions, lambda ref: enqueue(down, Stage.INFERENCE, ref), clock=lambda: NOW).hand_on_due()
    assert _is_due(sqlite_sessions, "4.4")
    up = create_celery_app(HilumSettings(redis=RedisSection(url=redis_server.url)))
    assert Assembler(sqlite_sessions, lambda ref: enqueue(up, Stage.INFERENCE, ref),
                     clock=lambda: NOW).hand_on_due() == 1
    assert redis_client.llen("inference") == 1 and not _is_due(sqlite_sessions, "4.4")


def test_an_arrival_during_the_handoff_keeps_the_study_due(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "5.5", PATIENT, None, view_positions=("PA",))
    _due(sqlite_sessions, "5.5", NOW)
    with sqlite_sessions() as session:
        seen = studies.require_study(session, "5.5").ready_at
    _due(sqlite_sessions, "5.5", NOW + timedelta(seconds=3))  # an instance arrived after the assembler read
    with sqlite_sessions.begin() as session:
        assert seen is not None and not studies.handed_on(session, "5.5", seen)
    assert _is_due(sqlite_sessions, "5.5")


def test_reference_of_a_lateral_only_study_has_no_frontal(sqlite_sessions: sessionmaker[Session]) -> None:
    record_study(sqlite_sessions, "6.6", PATIENT, None, view_positions=("LL",))
    with sqlite_sessions() as session:
        reference = study_reference(session, studies.require_study(session, "6.6"))
    assert reference.frontal_object_key == "" and reference.lateral_object_key == "dicom/6.6/1.dcm"


def test_a_study_stalled_in_flight_is_handed_on_again(sqlite_sessions: sessionmaker[Session]) -> None:
    """Its queue message was lost with a worker killed between taking it and recording it: no stage will move it."""
    for uid in ("4.1", "4.2", "4.3", "4.4", "4.5"):
        record_study(sqlite_sessions, uid, PATIENT, None, view_positions=("PA",))
    with sqlite_sessions.begin() as session:
        studies.advance(session, "4.2", study_state.INFERRED)
        studies.advance(session, "4.3", study_state.REPORTED)  # at rest: never stalled
        studies.fail(session, "4.4", "inference: image unreadable")
        studies.mark_due(session, "4.5", NOW)  # due: the assembler hands it on anyway
    handed: list[messages_pb2.StudyReference] = []
    # A quarter of an hour later nothing has moved 4.1 (received, handed on) nor 4.2 (inferred, sent to priors).
    later = NOW.replace(year=2100)
    assembler = Assembler(sqlite_sessions, handed.append, clock=lambda: later, stalled_after=timedelta(minutes=15))
    assert Assembler(sqlite_sessions, handed.append, clock=lambda: datetime.now(UTC)).resume_stalled() == 0
    resumed_before = REGISTRY.get_sample_value("hilum_resumed_total", {"what": "study"}) or 0.0
    assert assembler.resume_stalled() == 2
    assert REGISTRY.get_sample_value("hilum_resumed_total", {"what": "study"}) == resumed_before + 2
    assert assembler.hand_on_due() == 3
    assert sorted(r.study_instance_uid for r in handed) == ["4.1", "4.2", "4.5"]
    # In a century, none of the three handed on has been moved by a stage since: each is resumed again.
    assert assembler.resume_stalled() == 3
