"""Settings come from HILUM_* variables, and a supervisor can hand its settings to a child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilum.common.settings import HilumSettings, settings_env


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


def test_sqlite_is_the_default_database(tmp_path: Path) -> None:
    settings = HilumSettings()
    settings.storage.data_dir = tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'hilum.db'}"
