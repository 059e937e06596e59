"""Reprocessing against a real store and a real Redis: which studies go to inference again, and which do not."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum import cli
from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db import results, studies
from hilum.common.queue import Stage, create_celery_app, enqueue
from hilum.common.settings import FhirSection, HilumSettings, RedisSection, TritonSection
from hilum.common.study import PatientInfo
from hilum.ingestion.reprocess import Outcome, reprocess, studies_dated
from hilum.reporting.service import Reporting
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2
from tests.helpers import demo_comparison, instance_info, record_study, study_header

PATIENT = PatientInfo(patient_id="P3", issuer="", name="", birth_date=None, sex="")


def _reported(sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis, uid: str,
              started: datetime) -> None:
    """A study held by Hilum and reported under demo-untrained."""
    record_study(sessions, uid, PATIENT, started, view_positions=("PA",))
    Reporting(sessions, tmp_path / "out", redis_client, FhirSection()).publish(demo_comparison(uid))


def _set_state(sessions: sessionmaker[Session], uid: str, state: study_state.State) -> None:
    with sessions.begin() as session:
        studies.require_study(session, uid).state = study_state.name_of(state)


def test_only_studies_at_rest_and_not_yet_reported_under_the_served_version_go_again(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis
) -> None:
    _reported(sqlite_sessions, tmp_path, redis_client, "8.1", datetime(2026, 11, 2, 9, 0))
    _reported(sqlite_sessions, tmp_path, redis_client, "8.2", datetime(2026, 11, 3, 9, 0))
    record_study(sqlite_sessions, "8.3", PATIENT, datetime(2026, 11, 3, 10, 0), view_positions=("PA",))  # in flight
    record_study(sqlite_sessions, "8.4", PATIENT, datetime(2026, 11, 4, 10, 0), view_positions=("PA",))
    with sqlite_sessions.begin() as session:
        studies.fail(session, "8.4", "inference failed")
        studies.require_study(session, "8.2").images_purged_at = datetime(2026, 11, 20, tzinfo=UTC)
    handed: list[messages_pb2.StudyReference] = []
    uids = ["8.1", "8.2", "8.3", "8.4", "9.9", "8.1"]

    dry = reprocess(sqlite_sessions, handed.append, uids, "2.0.0", dry_run=True)
    assert [c.outcome for c in dry] == [Outcome.QUEUED, Outcome.IMAGES_PURGED, Outcome.IN_PIPELINE, Outcome.QUEUED,
                                        Outcome.NOT_FOUND]
    assert handed == []
    with sqlite_sessions() as session:
        assert studies.require_study(session, "8.4").state == "FAILED"

    chosen = reprocess(sqlite_sessions, handed.append, uids, "2.0.0")
    assert [c.outcome for c in chosen] == [c.outcome for c in dry]
    assert "8.1" not in "".join(c.ref for c in chosen)  # refs, never UIDs
    assert [(r.study_instance_uid, r.frontal_object_key) for r in handed] == [
        ("8.1", "dicom/8.1/1.dcm"), ("8.4", "dicom/8.4/1.dcm")]
    with sqlite_sessions() as session:
        # A failed study starts again; a reported one keeps its report while the new one is made.
        assert [studies.require_study(session, uid).state for uid in ("8.1", "8.4")] == ["REPORTED", "RECEIVED"]

    # Under the version it was already reported with, a study is not run again.
    _set_state(sqlite_sessions, "8.4", study_state.REPORTED)
    again = reprocess(sqlite_sessions, handed.append, ["8.1"], "demo-untrained")
    assert [c.outcome for c in again] == [Outcome.ALREADY_REPORTED] and len(handed) == 2


def test_a_comparison_only_prior_is_analysed_again_under_a_new_version_and_stays_unreported(
    sqlite_sessions: sessionmaker[Session]
) -> None:
    with sqlite_sessions.begin() as session:
        studies.ensure_study(session, study_header("6.1", PATIENT, datetime(2026, 11, 1, 9, 0)), comparison_only=True)
        studies.add_instance(session, "6.1", instance_info("6.1"))
        studies.advance(session, "6.1", study_state.ANALYSED)
        findings = messages_pb2.StudyFindings(study=messages_pb2.StudyReference(study_instance_uid="6.1"),
                                              model=messages_pb2.ModelInfo(name="cxr_findings", version="1.0.0"))
        results.save_findings(session, findings)
    handed: list[messages_pb2.StudyReference] = []
    assert [c.outcome for c in reprocess(sqlite_sessions, handed.append, ["6.1"], "1.0.0")] == [
        Outcome.ALREADY_ANALYSED]
    assert [c.outcome for c in reprocess(sqlite_sessions, handed.append, ["6.1"], "2.0.0")] == [Outcome.QUEUED]
    [reference] = handed
    assert reference.comparison_only and reference.frontal_object_key == "dicom/6.1/1.dcm"
    with sqlite_sessions() as session:
        assert studies.require_study(session, "6.1").state == "ANALYSED"


def test_studies_are_chosen_by_study_date_inclusive(sqlite_sessions: sessionmaker[Session]) -> None:
    for uid, day in (("7.1", 1), ("7.2", 2), ("7.3", 3)):
        record_study(sqlite_sessions, uid, PATIENT, datetime(2026, 11, day, 23, 59), view_positions=("PA",))
    record_study(sqlite_sessions, "7.4", PATIENT, None, view_positions=("PA",))  # no study date: never by date
    with sqlite_sessions() as session:
        assert studies_dated(session, date(2026, 11, 2), date(2026, 11, 3)) == ["7.2", "7.3"]
        assert studies_dated(session, date(2026, 11, 1), date(2026, 11, 1)) == ["7.1"]
        assert studies_dated(session, date(2026, 11, 4), date(2026, 12, 1)) == []


def test_a_broker_outage_hands_nothing_on_and_changes_nothing(
    sqlite_sessions: sessionmaker[Session], redis_server: RedisServer
) -> None:
    record_study(sqlite_sessions, "6.1", PATIENT, None, view_positions=("PA",))
    with sqlite_sessions.begin() as session:
        studies.fail(session, "6.1", "inference failed")
    down = create_celery_app(HilumSettings(redis=RedisSection(url="redis://127.0.0.1:1/0")))
    down.conf.broker_transport_options = {**down.conf.broker_transport_options, "max_retries": 0}
    with pytest.raises(Exception):  # noqa: B017 (kombu raises its own connection errors)
        reprocess(sqlite_sessions, lambda ref: enqueue(down, Stage.INFERENCE, ref), ["6.1"], None)
    with sqlite_sessions() as session:
        assert studies.require_study(session, "6.1").state == "FAILED"


def test_the_command_queues_on_the_inference_queue_and_says_what_it_did(
    tmp_settings: HilumSettings, redis_server: RedisServer, redis_client: redis_lib.Redis, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = tmp_settings.model_copy(update={
        "redis": RedisSection(url=redis_server.url), "triton": TritonSection(model_repository=tmp_path / "models")})
    sessions = open_sessions(settings)
    _reported(sessions, tmp_path, redis_client, "5.1", datetime(2026, 11, 2, 9, 0))
    _reported(sessions, tmp_path, redis_client, "5.2", datetime(2026, 11, 5, 9, 0))
    monkeypatch.setattr(cli, "HilumSettings", lambda: settings)

    assert cli.main(["reprocess", "--since", "2026-11-01", "--until", "2026-11-03"]) == 0
    out = capsys.readouterr().out
    assert "served model version: unknown here" in out
    assert out.strip().endswith("1 of 1 studies handed to inference")
    assert redis_client.llen("inference") == 1

    assert cli.main(["reprocess", "--study", "5.2", "--study", "4.4", "--dry-run"]) == 1  # 4.4 is not held
    out = capsys.readouterr().out
    assert "would be queued" in out and "not held by Hilum" in out and "5.2" not in out
    assert redis_client.llen("inference") == 1
    assert cli.main(["reprocess", "--until", "2026-11-03", "--study", "5.2"]) == 2
