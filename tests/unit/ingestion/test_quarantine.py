"""`hilum quarantine` against a real store: list, show, release (acceptance again) and delete."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest

from hilum.cli import main
from hilum.common.connections import open_object_store, open_sessions
from hilum.common.db import studies
from hilum.common.settings import HilumSettings, settings_env
from hilum.ingestion.quarantine import list_lines, show_lines
from hilum.ingestion.service import IncomingInstance, QuarantineNotFound
from hilum.ingestion.wiring import build
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES


@pytest.fixture
def cli_settings(tmp_settings: HilumSettings, monkeypatch: pytest.MonkeyPatch) -> HilumSettings:
    """tmp_settings, also as the HILUM_* environment the CLI reads."""
    for key, value in settings_env(tmp_settings).items():
        monkeypatch.setenv(key, value)
    return tmp_settings


def _submit(settings: HilumSettings, *paths: Path) -> list[int]:
    response = build(settings).accept(IncomingInstance(label=p.name, content=p.read_bytes()) for p in paths)
    return [r.quarantine_id for r in response.results]


def test_list_and_show(cli_settings: HilumSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_rejectable_inputs(tmp_path / "bad")
    ct_id, text_id = _submit(cli_settings, bad["ct_image"], bad["not_dicom"])
    lines = list_lines(open_sessions(cli_settings))
    assert [line.split()[0] for line in lines] == [str(ct_id), str(text_id)]
    assert "UNSUPPORTED_MODALITY" in lines[0] and bad["ct_image"].name in lines[0]
    shown = show_lines(open_sessions(cli_settings), open_object_store(cli_settings), ct_id)
    assert any(line.startswith("reason:") for line in shown)
    assert f"patient: {pydicom.dcmread(bad['ct_image']).PatientID}" in "\n".join(shown)
    assert main(["quarantine", "list"]) == 0
    assert str(text_id) in capsys.readouterr().out
    with pytest.raises(QuarantineNotFound):
        show_lines(open_sessions(cli_settings), open_object_store(cli_settings), 999)
    assert main(["quarantine", "show", "999"]) == 1


def test_release_and_delete_through_the_cli(cli_settings: HilumSettings, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_rejectable_inputs(tmp_path / "bad")
    [ct_id] = _submit(cli_settings, bad["ct_image"])
    assert main(["quarantine", "release", str(ct_id)]) == 2  # a CT is still refused
    assert "still held" in capsys.readouterr().out
    assert main(["quarantine", "delete", str(ct_id)]) == 0
    assert main(["quarantine", "list"]) == 0
    assert "the quarantine is empty" in capsys.readouterr().out
    assert main(["quarantine", "list", "--all"]) == 0
    assert "[deleted]" in capsys.readouterr().out


def test_a_released_instance_is_stored(cli_settings: HilumSettings, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    first = write_study(dataclasses.replace(SAMPLE_STUDIES[0], rows=160, columns=128), tmp_path / "a")
    intruder = write_study(dataclasses.replace(SAMPLE_STUDIES[2], rows=160, columns=128), tmp_path / "b")
    dataset = pydicom.dcmread(intruder)
    dataset.StudyInstanceUID = pydicom.dcmread(first).StudyInstanceUID
    dataset.save_as(intruder)
    _submit(cli_settings, first)
    [held] = _submit(cli_settings, intruder)
    assert held > 0
    # Upstream fixes the study UID of the first patient's study; here: the first study is removed.
    with open_sessions(cli_settings).begin() as session:
        session.delete(studies.require_study(session, dataset.StudyInstanceUID))
    assert main(["quarantine", "release", str(held)]) == 0
    assert f"accepted into study {dataset.StudyInstanceUID}" in capsys.readouterr().out
