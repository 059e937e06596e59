"""Shared resources opened from settings: database sessions, the object store and Redis, all real."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import redis as redis_lib

from hilum.common.connections import open_object_store, open_redis, open_sessions
from hilum.common.db import studies
from hilum.common.db.session import upgrade_database
from hilum.common.settings import HilumSettings, RedisSection, StorageSection
from hilum.common.study import PatientInfo
from hilum.runtime.redis_server import RedisServer
from tests.helpers import study_header

PATIENT = PatientInfo(patient_id="C1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")


def _settings(tmp_path: Path, redis_url: str = "redis://127.0.0.1:6390/0") -> HilumSettings:
    return HilumSettings(storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
                         redis=RedisSection(url=redis_url))


def test_sessions_open_on_the_configured_database(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "data").mkdir()
    upgrade_database(settings.database_url)
    with open_sessions(settings).begin() as session:
        studies.ensure_study(session, study_header("61.1", PATIENT, datetime(2025, 1, 1)))
    # A second factory from the same settings sees the same database file.
    with open_sessions(settings)() as session:
        row = studies.get_study(session, "61.1")
        assert row is not None and row.patient_id == "C1"
    assert (tmp_path / "data" / "hilum.db").is_file()


def test_the_object_store_lives_in_the_data_directory(tmp_path: Path) -> None:
    store = open_object_store(_settings(tmp_path))
    assert store.root == tmp_path / "data" / "objects"
    store.put("dicom/1/2/3.dcm", b"DICM")
    assert (tmp_path / "data" / "objects" / "dicom" / "1" / "2" / "3.dcm").read_bytes() == b"DICM"


def test_redis_opens_on_the_configured_url(tmp_path: Path, redis_server: RedisServer,
                                           redis_client: redis_lib.Redis) -> None:
    client = open_redis(_settings(tmp_path, redis_server.url))
    try:
        assert client.ping()
        client.set("hilum:test:connections", b"1")
        assert redis_client.get("hilum:test:connections") == b"1"
    finally:
        client.close()
