"""Settings come from HILUM_* variables, and a supervisor can hand its settings to a child process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilum.common.settings import HilumSettings, PriorsFhirServer, TrustedIssuer, settings_env


def test_environment_overrides_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILUM_REDIS__URL", "redis://127.0.0.1:7000/2")
    monkeypatch.setenv("HILUM_GRPC__INGESTION_PORT", "6001")
    settings = HilumSettings()
    assert settings.redis.url == "redis://127.0.0.1:7000/2"
    assert settings.grpc.ingestion_port == 6001


def test_settings_survive_the_trip_through_a_child_environment(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    original = HilumSettings()
    original.storage.data_dir = tmp_path / "data"
    original.queue.worker_concurrency = 3
    original.database.url = "postgresql+psycopg://hilum@db:5432/hilum"
    original.dicom.allowed_calling_aets = ["MODALITY1", "PACS"]
    original.dicom.tls_cert_file = tmp_path / "cert.pem"
    original.ingestion.accept_secondary_capture = True
    original.ingestion.stability_window_s = 0.0
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert HilumSettings() == original


def test_trusted_issuers_survive_the_trip_through_a_child_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = HilumSettings()
    settings.cds.trusted_issuers = [TrustedIssuer(iss="https://ehr.example.org", jku="https://ehr.example.org/jwks")]
    settings.cds.public_url = "https://cds.example.org"
    env = settings_env(settings)
    assert json.loads(env["HILUM_CDS__TRUSTED_ISSUERS"]) == [
        {"iss": "https://ehr.example.org", "jku": "https://ehr.example.org/jwks"}]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = HilumSettings()
    assert child.cds.trusted_issuers == settings.cds.trusted_issuers
    assert child.cds.base_url == "https://cds.example.org"


def test_cds_base_url_defaults_to_host_and_port() -> None:
    settings = HilumSettings()
    assert settings.cds.trusted_issuers == [] and settings.cds.clock_skew_s == 60
    assert settings.cds.base_url == f"http://{settings.cds.host}:{settings.cds.port}"


def test_sqlite_is_the_default_database(tmp_path: Path) -> None:
    settings = HilumSettings()
    settings.storage.data_dir = tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'hilum.db'}"


def test_the_priors_sources_and_their_fhir_server_survive_the_trip(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    settings = HilumSettings()
    assert settings.priors.sources == ["store"] and not settings.priors.fhir_server.url
    settings.priors.sources = ["store", "fhir"]
    settings.priors.fhir_server = PriorsFhirServer(url="https://fhir.example/R4", token_url="https://auth.example/t",
                                                   client_id="hilum", private_key_file=tmp_path / "key.pem",
                                                   issuer_systems={"HOSP": "urn:oid:1.2.3"})
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    child = HilumSettings()
    assert child == settings and child.priors.fhir_server.scope.startswith("system/Patient.rs")
    assert child.publish.fhir_server.scope == "system/*.crus"  # publishing keeps its own scopes
