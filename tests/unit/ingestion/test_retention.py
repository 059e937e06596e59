"""Retention: `purge_images` deletes the stored images of old, finished studies only, keeps every result, records
the purge, and is safe to run again; on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import studies
from hilum.common.db.models import DeliveryRow, FindingsRow, InstanceRow, ReportRow
from hilum.common.db.session import create_db_engine, session_factory, upgrade_database
from hilum.common.model_inputs import model_inputs_key
from hilum.common.object_store import ObjectStore, dicom_key
from hilum.common.study import PatientInfo
from hilum.ingestion.retention import PurgedStudy, purge_images, study_line, summary_line
from tests.helpers import audit_events, audited_patient_ids, instance_info, study_header

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAYS_30 = timedelta(days=30)
OLD = NOW - timedelta(days=40)
YOUNG = NOW - timedelta(days=5)
JANE = PatientInfo(patient_id="P1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> sessionmaker[Session]:
    """Sessions on a migrated database: the embedded SQLite file, and a fresh PostgreSQL database."""
    url = f"sqlite:///{tmp_path / 'hilum.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade_database(url)
    return session_factory(create_db_engine(url))


def _study(sessions: sessionmaker[Session], store: ObjectStore, uid: str, state: study_state.State,
           received: datetime, images: int = 2) -> list[str]:
    """A study as ingestion leaves it (objects stored under their real keys) in `state`, received at `received`,
    with a findings and a report row; returns its object keys."""
    keys = []
    with sessions.begin() as session:
        studies.ensure_study(session, study_header(uid, JANE, None))
        for number in range(1, images + 1):
            info = instance_info(uid, number)
            key = dicom_key(uid, info.series_instance_uid, info.sop_instance_uid)
            store.put(key, b"DICM" * (250 * number))
            studies.add_instance(session, uid, dataclasses.replace(info, object_key=key))
            keys.append(key)
        row = studies.require_study(session, uid)
        row.state, row.received_at = study_state.name_of(state), received
        for instance in session.scalars(select(InstanceRow).where(InstanceRow.study_instance_uid == uid)):
            instance.received_at = received
        session.add(FindingsRow(study_instance_uid=uid, model_version="v1", payload=b"f", model_name="cxr_findings",
                                demo_weights=True))
        session.add(ReportRow(study_instance_uid=uid, model_version="v1", payload=b"r", diagnostic_report_id="dr",
                              bundle_json="{}", bundle_path="out/x.json"))
    return keys


def _purged_at(sessions: sessionmaker[Session], uid: str) -> datetime | None:
    with sessions() as session:
        when = studies.require_study(session, uid).images_purged_at
    return when if when is None or when.tzinfo else when.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _results(sessions: sessionmaker[Session], uid: str) -> list[int]:
    """How many instance, findings and report rows the study has."""
    with sessions() as session:
        return [len(session.scalars(select(table).where(table.study_instance_uid == uid)).all())
                for table in (InstanceRow, FindingsRow, ReportRow)]


def test_old_finished_studies_lose_their_images_and_keep_their_results(sessions: sessionmaker[Session],
                                                                       store: ObjectStore) -> None:
    reported = _study(sessions, store, "1.1", study_state.REPORTED, OLD)
    failed = _study(sessions, store, "1.2", study_state.FAILED, OLD, images=1)
    young = _study(sessions, store, "1.3", study_state.REPORTED, YOUNG)
    in_flight = _study(sessions, store, "1.4", study_state.INFERRED, OLD)
    due_again = _study(sessions, store, "1.5", study_state.REPORTED, OLD)  # a resubmission waits for inference
    late = _study(sessions, store, "1.6", study_state.REPORTED, OLD)  # a late instance arrived yesterday
    pending = _study(sessions, store, "1.7", study_state.REPORTED, OLD)  # the DICOM SR is still being sent
    store.put(model_inputs_key(reported[0]), b"inputs")  # left by a study that never reached inference
    with sessions.begin() as session:
        studies.mark_due(session, "1.5", NOW)
        session.get_one(InstanceRow, "1.6.2").received_at = NOW - timedelta(days=1)
        session.add(DeliveryRow(study_instance_uid="1.7", model_version="v1", destination="pacs", event="preliminary",
                                status="pending"))

    purged = list(purge_images(sessions, store, DAYS_30, NOW))

    assert [(p.study_instance_uid, p.state, p.images, p.size_bytes) for p in purged] == [
        ("1.1", "REPORTED", 2, 3000), ("1.2", "FAILED", 1, 1000)]
    assert not any(store.exists(key) for key in reported + failed)
    assert not store.exists(model_inputs_key(reported[0]))
    assert not (store.root / "dicom" / "1.1").exists() and (store.root / "dicom").is_dir()  # no UID-named folders
    assert _purged_at(sessions, "1.1") == NOW and _purged_at(sessions, "1.2") == NOW
    assert _results(sessions, "1.1") == [2, 1, 1]  # the instance records, findings and report stay
    assert all(store.exists(key) for key in young + in_flight + due_again + late + pending)
    assert all(_purged_at(sessions, uid) is None for uid in ("1.3", "1.4", "1.5", "1.6", "1.7"))
    # Each purge is a DICOM Study Deleted in the audit trail, naming the patient and the study.
    deleted = audit_events(sessions, "110105")
    assert [e["entity"][1]["what"]["identifier"]["value"] for e in deleted] == ["urn:oid:1.1", "urn:oid:1.2"]
    assert all(e["action"] == "D" and audited_patient_ids(e) for e in deleted)
    assert {"type": "reason", "valueString": "retention: older than 30 days"} in deleted[0]["entity"][1]["detail"]


def test_a_dry_run_names_the_same_studies_and_changes_nothing(sessions: sessionmaker[Session],
                                                              store: ObjectStore) -> None:
    keys = _study(sessions, store, "2.1", study_state.REPORTED, OLD) + _study(sessions, store, "2.2",
                                                                              study_state.FAILED, OLD)
    _study(sessions, store, "2.3", study_state.REPORTED, YOUNG)

    dry = list(purge_images(sessions, store, DAYS_30, NOW, dry_run=True, batch=1))
    assert audit_events(sessions) == []  # nothing was deleted

    assert [p.study_instance_uid for p in dry] == ["2.1", "2.2"]
    assert all(store.exists(key) for key in keys)
    assert _purged_at(sessions, "2.1") is None and _purged_at(sessions, "2.2") is None
    assert [p.study_instance_uid for p in purge_images(sessions, store, DAYS_30, NOW)] == ["2.1", "2.2"]


def test_a_second_run_purges_nothing_more_and_a_crashed_run_is_finished(sessions: sessionmaker[Session],
                                                                        store: ObjectStore) -> None:
    for uid in ("3.1", "3.2", "3.3"):
        _study(sessions, store, uid, study_state.REPORTED, OLD)
    crashed = _study(sessions, store, "3.4", study_state.REPORTED, OLD)
    store.delete(crashed[0])  # a run deleted this object, then stopped before it recorded the purge

    first = list(purge_images(sessions, store, DAYS_30, NOW, batch=2))

    assert [(p.study_instance_uid, p.images) for p in first] == [("3.1", 2), ("3.2", 2), ("3.3", 2), ("3.4", 1)]
    assert not any(store.exists(key) for key in crashed)
    assert list(purge_images(sessions, store, DAYS_30, NOW + timedelta(days=1))) == []
    assert _purged_at(sessions, "3.1") == NOW


def test_an_instance_stored_after_the_purge_is_purged_once_it_is_old(sessions: sessionmaker[Session],
                                                                     store: ObjectStore) -> None:
    _study(sessions, store, "4.1", study_state.REPORTED, OLD)
    assert len(list(purge_images(sessions, store, DAYS_30, NOW))) == 1
    later = NOW + timedelta(days=2)
    with sessions.begin() as session:  # a late series, then the study rests REPORTED again
        info = instance_info("4.1", 3)
        key = dicom_key("4.1", info.series_instance_uid, info.sop_instance_uid)
        store.put(key, b"late")
        studies.add_instance(session, "4.1", dataclasses.replace(info, object_key=key))
        session.get_one(InstanceRow, "4.1.3").received_at = later

    assert list(purge_images(sessions, store, DAYS_30, later + timedelta(days=29))) == []
    again = list(purge_images(sessions, store, DAYS_30, later + timedelta(days=31)))

    assert [(p.study_instance_uid, p.images) for p in again] == [("4.1", 1)] and not store.exists(key)


def test_lines_use_a_hashed_reference_and_add_up() -> None:
    studies_purged = [PurgedStudy("1.2.840.99", "REPORTED", OLD, 2, 3_500_000),
                      PurgedStudy("1.2.840.98", "FAILED", OLD, 1, 1_000_000)]
    line = study_line(studies_purged[0], dry_run=False)
    assert line.startswith("purged  study ") and "1.2.840.99" not in line
    assert line.endswith("REPORTED  received 2026-10-22  2 images  3.5 MB")
    assert study_line(studies_purged[0], dry_run=True).startswith("would purge  study ")
    assert summary_line(studies_purged, dry_run=False) == "2 studies, 3 images purged (4.5 MB)"
    assert summary_line([], dry_run=True) == "0 studies, 0 images would be purged (0.0 MB); dry run, nothing changed"
