"""Prior sources from settings, and Hilum's own store as one: the same patient's latest earlier study, on the
embedded SQLite store and on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db.session import create_db_engine, session_factory, upgrade_database
from hilum.common.queue import Stage, create_celery_app
from hilum.common.settings import (
    HilumSettings,
    PacsSection,
    PriorsFhirServer,
    PriorsSection,
    RedisSection,
    StorageSection,
)
from hilum.common.study import PatientInfo, StudyInfo
from hilum.priors.fhir_source import FhirServerSource
from hilum.priors.pacs_source import PacsSource
from hilum.priors.sources import StoreSource, configured_sources
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2
from tests.helpers import record_study

PATIENT = PatientInfo(patient_id="P1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
NOW = datetime(2026, 11, 30, 10, 0)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> sessionmaker[Session]:
    """Sessions on a migrated database: the embedded SQLite file, and a fresh PostgreSQL database."""
    url = f"sqlite:///{tmp_path / 'hilum.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade_database(url)
    return session_factory(create_db_engine(url))


def _current(uid: str, started: datetime | None = NOW, patient: PatientInfo = PATIENT) -> StudyInfo:
    return StudyInfo(study_instance_uid=uid, patient=patient, started=started, accession_number="", description="")


def test_the_store_names_the_same_patients_latest_earlier_study(sessions: sessionmaker[Session]) -> None:
    record_study(sessions, "2.25.11", PATIENT, datetime(2025, 1, 10, 8, 0), view_positions=("PA",))
    record_study(sessions, "2.25.12", PATIENT, datetime(2026, 6, 1, 9, 0), view_positions=("PA", "LL"))
    record_study(sessions, "2.25.13", PATIENT, NOW, view_positions=("PA",))
    record_study(sessions, "2.25.14", PATIENT, datetime(2026, 12, 5, 9, 0))  # later: never a prior
    record_study(sessions, "2.25.19", PatientInfo("P1", "OTHER", "DOE^JANE", None, "F"), datetime(2026, 9, 1))

    prior = StoreSource(sessions).find_prior(_current("2.25.13"))

    assert prior is not None
    assert (prior.study_instance_uid, prior.started, prior.modality, prior.source) == (
        "2.25.12", datetime(2026, 6, 1, 9, 0), "DX", "store")
    assert prior.report is None and prior.study_date == "20260601"
    assert prior.reason == ("most recent study before 2026-11-30T10:00:00 for PatientID P1 (issuer HOSP) "
                            "in Hilum's store")


def test_the_store_has_no_prior_for_a_first_study_or_one_without_a_start(sessions: sessionmaker[Session]) -> None:
    record_study(sessions, "2.25.21", PATIENT, datetime(2026, 6, 1, 9, 0))
    record_study(sessions, "2.25.22", PATIENT, None)
    assert StoreSource(sessions).find_prior(_current("2.25.21", datetime(2026, 6, 1, 9, 0))) is None
    assert StoreSource(sessions).find_prior(_current("2.25.22", None)) is None


def test_sources_are_built_in_the_configured_order(sqlite_sessions: sessionmaker[Session]) -> None:
    settings = HilumSettings(priors=PriorsSection(sources=["fhir", "pacs", "store"],
                                                  fhir_server=PriorsFhirServer(url="http://fhir.example/R4")),
                             pacs=PacsSection(dicomweb_url="http://pacs.example/dicom-web"))
    fhir, pacs, store = configured_sources(settings, sqlite_sessions, create_celery_app(settings))
    assert isinstance(fhir, FhirServerSource) and isinstance(pacs, PacsSource) and isinstance(store, StoreSource)
    assert [source.name for source in configured_sources(HilumSettings(), sqlite_sessions,
                                                         create_celery_app(HilumSettings()))] == ["store"]


def test_a_pacs_source_without_a_pacs_is_a_configuration_error(sqlite_sessions: sessionmaker[Session]) -> None:
    settings = HilumSettings(priors=PriorsSection(sources=["pacs"]))
    with pytest.raises(ValueError, match="no PACS is configured"):
        configured_sources(settings, sqlite_sessions, create_celery_app(settings))


def test_what_the_pacs_source_fetches_goes_to_ingestions_queue(
        sqlite_sessions: sessionmaker[Session], redis_server: RedisServer, redis_client: redis_lib.Redis,
        tmp_path: Path) -> None:
    settings = HilumSettings(priors=PriorsSection(sources=["pacs"]), redis=RedisSection(url=redis_server.url),
                             pacs=PacsSection(ae_title="PACS", host="127.0.0.1", port=free_port()),
                             storage=StorageSection(data_dir=tmp_path / "data"))
    [pacs] = configured_sources(settings, sqlite_sessions, create_celery_app(settings))
    assert isinstance(pacs, PacsSource)
    pacs._hand_to_ingestion(messages_pb2.SpooledInstances(spool_keys=["spool/prior-1.dcm"], comparison_only=True))
    [queued] = redis_client.lrange(Stage.INGESTION.value, 0, -1)
    assert b"hilum.ingestion.run" in queued


def test_a_fhir_source_without_a_server_is_a_configuration_error(sqlite_sessions: sessionmaker[Session],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILUM_PRIORS__SOURCES", '["store","fhir"]')
    with pytest.raises(ValueError, match="priors.fhir_server.url is empty"):
        configured_sources(HilumSettings(), sqlite_sessions, create_celery_app(HilumSettings()))
