"""The `hilum` command line: subcommands parse, and the offline ones do their job."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from hilum.cli import build_parser, main


@pytest.mark.parametrize("argv", [
    ["demo", "--keep-running", "--fresh"], ["ingest", "a.dcm", "b/"], ["status", "1.2.3"],
    ["serve", "inference"], ["serve", "cds"], ["worker", "reporting"], ["models", "demo"],
    ["models", "fetch", "--weights", "w.pt"], ["samples", "out"], ["db", "upgrade"],
])
def test_every_subcommand_parses(argv: list[str]) -> None:
    assert callable(build_parser().parse_args(argv).handler)


def test_unknown_service_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "cds"])


def test_samples_writes_studies_and_rejectable_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["samples", "samples"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 7
    studies = sorted((tmp_path / "samples").glob("*.dcm"))
    assert len(studies) == 4 and all(pydicom.dcmread(p).Modality == "DX" for p in studies)


def test_db_upgrade_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "data" / "hilum.db").is_file()
