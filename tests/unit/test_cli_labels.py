"""`hilum labels`: one report from a file or stdin, as a table or as one JSON object of an exact shape."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hilum import cli

REPORT = ("INDICATION: Evaluate for pneumonia.\nFINDINGS: Small left pleural effusion. No pneumothorax. "
          "ETT tip 3 cm above the carina. Right IJ line.\nIMPRESSION: Stable mild cardiomegaly.")
EXPECTED = {
    "findings": [
        {"label": "Pneumothorax", "status": "absent", "laterality": None, "severity": None, "change": None},
        {"label": "Effusion", "status": "present", "laterality": "left", "severity": "small", "change": None},
        {"label": "Cardiomegaly", "status": "present", "laterality": None, "severity": "mild", "change": "stable"},
    ],
    "devices": [
        {"kind": "ett", "status": "present", "laterality": None, "mm_above_carina": 30.0},
        {"kind": "cvc", "status": "present", "laterality": "right", "mm_above_carina": None},
    ],
}


def test_labels_parses_an_optional_file_and_json() -> None:
    args = cli.build_parser().parse_args(["labels"])
    assert args.handler is cli._labels and args.file is None and not args.json
    args = cli.build_parser().parse_args(["labels", "report.txt", "--json"])
    assert args.file == Path("report.txt") and args.json


def test_json_from_stdin_is_one_object_of_the_exact_shape(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(REPORT))
    assert cli.main(["labels", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out) == EXPECTED


def test_json_from_a_file_equals_json_from_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.txt"
    report.write_text(REPORT)
    assert cli.main(["labels", str(report), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED


def test_the_console_command_reads_stdin() -> None:
    done = subprocess.run([sys.executable, "-m", "hilum.cli", "labels", "--json"], input="No pneumothorax.",
                          capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout) == {"findings": [
        {"label": "Pneumothorax", "status": "absent", "laterality": None, "severity": None, "change": None}],
        "devices": []}


def test_the_table_has_a_row_per_finding_and_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.txt"
    report.write_text(REPORT + " No acute cardiopulmonary abnormality.")
    assert cli.main(["labels", str(report)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["finding", "status", "side", "severity", "change"]
    assert lines[2].split() == ["Effusion", "present", "left", "small", "-"]
    assert ["ett", "present", "-", "30", "mm"] in [line.split() for line in lines]
    assert ["cvc", "present", "right", "-"] in [line.split() for line in lines]
    assert lines[-1].startswith("the report states no acute disease")


def test_a_report_that_mentions_nothing_says_so(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Lungs are clear."))
    assert cli.main(["labels"]) == 0
    assert capsys.readouterr().out == "no cxr_findings label mentioned\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["labels", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"findings": [], "devices": []}


def test_an_unreadable_file_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["labels", str(tmp_path / "missing.txt")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("hilum labels: cannot read ")
