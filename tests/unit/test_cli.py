"""The `hilum` command line: each subcommand reaches its handler with its arguments, and the offline ones
(and a refused `hilum up`) do their job.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import create_engine, inspect

from hilum import cli
from hilum.common.connections import open_object_store, open_sessions
from hilum.common.db import studies
from hilum.common.db.session import upgrade_database
from hilum.common.logs import study_ref
from hilum.common.settings import HealthSection, HilumSettings, PacsSection, settings_env
from hilum.common.study import PatientInfo
from hilum.inference.weights_download import PUBLISHED_WEIGHTS_URL
from hilum.runtime.ports import free_port, loopback_settings
from tests.helpers import record_study


@pytest.mark.parametrize(("argv", "handler", "parsed"), [
    (["up"], "_up", {}),
    (["demo"], "_demo", {"keep_running": False, "fresh": False}),
    (["demo", "--keep-running", "--fresh"], "_demo", {"keep_running": True, "fresh": True}),
    (["ingest", "a.dcm", "b/"], "_ingest", {"paths": [Path("a.dcm"), Path("b")], "address": None}),
    (["ingest", "a.dcm", "--address", "127.0.0.1:1"], "_ingest", {"address": "127.0.0.1:1"}),
    (["status", "1.2.3"], "_status", {"study_instance_uid": "1.2.3", "address": None}),
    (["status"], "_status", {"study_instance_uid": None}),
    (["dead-letters", "list", "--all"], "_dead_letters", {"action": "list", "all": True, "stage": None}),
    (["dead-letters", "replay", "--stage", "inference", "--id", "3", "--id", "4"], "_dead_letters",
     {"action": "replay", "stage": "inference", "id": [3, 4]}),
    (["cds", "rebuild"], "_cds_rebuild", {}),
    (["serve", "inference"], "_serve", {"service": ["inference"]}),
    (["serve", "ingestion", "inference"], "_serve", {"service": ["ingestion", "inference"]}),
    (["serve", "cds"], "_serve", {"service": ["cds"]}),
    (["worker", "reporting"], "_worker", {"service": ["reporting"]}),
    (["models", "demo"], "_models", {"weights": None, "model": None, "op_threshs": None}),
    (["models", "fetch", "--weights", "w.pt"], "_models",
     {"weights": Path("w.pt"), "model": "cxr_findings", "op_threshs": None}),
    (["models", "fetch"], "_models", {"weights": None, "url": PUBLISHED_WEIGHTS_URL, "op_threshs": None}),
    (["models", "import", "--model", "cxr_devices", "--weights", "d.pt"], "_models",
     {"weights": Path("d.pt"), "model": "cxr_devices", "op_threshs": None}),
    (["samples", "out"], "_samples", {"out_dir": Path("out")}),
    (["db", "upgrade"], "_db_upgrade", {}),
    (["db", "wait"], "_db_wait", {"timeout": 300.0}),
    (["db", "wait", "--timeout", "2.5"], "_db_wait", {"timeout": 2.5}),
    (["cds", "feedback"], "_cds_feedback", {"last": 0}),
    (["cds", "feedback", "--last", "5"], "_cds_feedback", {"last": 5}),
    (["publish", "list", "--state", "dead"], "_publish", {"action": "list", "state": "dead", "limit": 100}),
    (["publish", "replay", "--destination", "mllp"], "_publish",
     {"action": "replay", "destination": "mllp", "study": None}),
    (["publish", "status", "1.2.3", "cancelled", "--model-version", "v1"], "_publish",
     {"action": "status", "study": "1.2.3", "status": "cancelled", "model_version": "v1"}),
    (["worker", "priors", "publishing"], "_worker", {"service": ["priors", "publishing"]}),
    (["purge", "images", "--older-than", "30"], "_purge_images", {"older_than": 30, "dry_run": False}),
    (["purge", "images", "--older-than", "1", "--dry-run"], "_purge_images", {"older_than": 1, "dry_run": True}),
    (["reprocess", "--study", "1.2.3", "--study", "1.2.4"], "_reprocess",
     {"study": ["1.2.3", "1.2.4"], "since": None, "until": None, "dry_run": False}),
    (["reprocess", "--since", "2026-11-01", "--until", "20261130", "--dry-run"], "_reprocess",
     {"study": None, "since": date(2026, 11, 1), "until": date(2026, 11, 30), "dry_run": True}),
])
def test_every_subcommand_reaches_its_handler_with_its_arguments(argv: list[str], handler: str,
                                                                 parsed: dict[str, Any]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.handler is getattr(cli, handler)
    assert {name: getattr(args, name) for name in parsed} == parsed


@pytest.mark.parametrize("argv", [
    ["worker", "cds"],  # the CDS app has no worker
    ["serve", "triton"],
    ["up", "--keep-running"],  # `up` always stays up
    ["models", "import", "--model", "cxr_devices"],  # import names its file
    ["publish", "status", "1.2.3", "final", "--model-version", "v1"],  # only amended or cancelled
    ["db", "wait", "--timeout", "0"],  # waiting no time at all says nothing
    ["purge", "images"],  # the retention is the operator's to say
    ["purge", "images", "--older-than", "0"],  # what arrived today is never past retention
    ["purge", "images", "--older-than", "1.5"],
    ["reprocess"],  # which studies is the operator's to say
    ["reprocess", "--study", "1.2.3", "--since", "2026-11-01"],  # one way of choosing at a time
    ["reprocess", "--since", "last week"],
    [],
])
def test_a_wrong_command_line_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.build_parser().parse_args(argv)
    assert refused.value.code == 2
    assert "usage: hilum" in capsys.readouterr().err


# An operator's --op-threshs file: 18 thresholds in labels.json order, null where the weights are untrained.
OPERATOR_OP_THRESHS = [*[0.2] * 14, None, None, 0.35, None]


@pytest.mark.parametrize("argv", [
    ["models", "fetch"],
    ["models", "fetch", "--weights", "w.pt"],
    ["models", "import", "--weights", "w.pt"],
    ["models", "import", "--model", "cxr_findings", "--weights", "w.pt"],
])
def test_models_read_the_operators_thresholds_file(argv: list[str], tmp_path: Path) -> None:
    thresholds = tmp_path / "op_threshs.json"
    thresholds.write_text(json.dumps(OPERATOR_OP_THRESHS))
    args = cli.build_parser().parse_args([*argv, "--op-threshs", str(thresholds)])
    assert args.handler is cli._models and args.model == "cxr_findings"
    assert args.op_threshs == tuple(OPERATOR_OP_THRESHS)


@pytest.mark.parametrize("options", [
    ["--model", "cxr_devices", "--op-threshs", "{file}"],
    ["--op-threshs", "{file}", "--model", "cxr_devices"],
])
def test_operator_thresholds_are_refused_for_the_devices_model(options: list[str], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    thresholds = tmp_path / "op_threshs.json"
    thresholds.write_text(json.dumps(OPERATOR_OP_THRESHS))
    argv = ["models", "import", "--weights", "d.pt", *[o.format(file=thresholds) for o in options]]
    with pytest.raises(SystemExit) as refused:
        cli.build_parser().parse_args(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "usage: hilum models import" in err
    assert "--op-threshs is for --model cxr_findings only, not cxr_devices" in err


@pytest.mark.parametrize("content", [json.dumps([0.2] * 17), json.dumps([*[0.2] * 17, 2.0]), "[0.2,"],
                         ids=["17", "above-1", "not-json"])
def test_a_malformed_thresholds_file_is_refused_naming_it(content: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    thresholds = tmp_path / "site-thresholds.json"
    thresholds.write_text(content)
    with pytest.raises(SystemExit) as refused:
        cli.build_parser().parse_args(["models", "fetch", "--weights", "w.pt", "--op-threshs", str(thresholds)])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "usage: hilum models fetch" in err
    assert f"argument --op-threshs: {thresholds}: " in err


def test_up_with_a_port_taken_is_one_line_and_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = loopback_settings(tmp_path, tmp_path / "models", tmp_path / "venv")
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.triton.http_port))
        taken.listen()
        code = cli.main(["up"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == (f"hilum up: port {settings.triton.http_port} is already in use "
                   "(set HILUM_TRITON__HTTP_PORT to move Triton's HTTP endpoint)\n")
    assert out == ""
    assert not settings.storage.data_dir.exists()


def test_samples_writes_studies_and_rejectable_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["samples", "samples"]) == 0
    printed = [Path(line) for line in capsys.readouterr().out.splitlines()]
    written = sorted(p.relative_to(tmp_path) for p in (tmp_path / "samples").rglob("*") if p.is_file())
    assert sorted(printed) == written  # one line per file written, each naming it
    studies = [p for p in printed if p.parent == Path("samples")]
    assert len(studies) == 4 and all(pydicom.dcmread(p).Modality == "DX" for p in studies)
    assert len([p for p in printed if p.parent == Path("samples/rejectable")]) == 3


def test_db_upgrade_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["db", "upgrade"]) == 0
    tables = set(inspect(create_engine(f"sqlite:///{tmp_path / 'data' / 'hilum.db'}")).get_table_names())
    assert {"alembic_version", "studies", "instances", "findings", "reports", "rejections", "dead_letters"} <= tables
    assert capsys.readouterr().out == "database schema is at the latest revision\n"


def test_db_wait_fails_until_the_migration_ran_then_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    assert cli.main(["db", "wait", "--timeout", "0.3"]) == 1
    refused = capsys.readouterr()
    assert refused.out == ""
    assert refused.err == ("hilum db wait: gave up after 0.3 s: the schema is not at the latest revision "
                           "(the migration, `hilum db upgrade`, has not run)\n")
    assert cli.main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert cli.main(["db", "wait", "--timeout", "0.3"]) == 0
    assert capsys.readouterr().out == "database schema is at the latest revision\n"


@pytest.mark.integration
def test_db_wait_returns_once_the_migration_job_has_run(postgres_url: str, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HILUM_DATABASE__URL", postgres_url)
    migration = threading.Timer(0.5, upgrade_database, (postgres_url,))  # the Job, finishing while pods wait
    migration.start()
    started = time.monotonic()
    try:
        assert cli.main(["db", "wait", "--timeout", "30"]) == 0
    finally:
        migration.join()
    assert 0.5 <= time.monotonic() - started < 30
    assert capsys.readouterr().out == "database schema is at the latest revision\n"


def test_db_wait_on_an_unreachable_database_names_no_host_or_password(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("HILUM_DATABASE__URL", f"postgresql+psycopg://hilum:s3cret@127.0.0.1:{port}/hilum")
    assert cli.main(["db", "wait", "--timeout", "0.2"]) == 1
    err = capsys.readouterr().err
    assert err == "hilum db wait: gave up after 0.2 s: the database cannot be reached (OperationalError)\n"


def test_publish_list_and_status_on_an_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["publish", "list"]) == 0
    assert capsys.readouterr().out.endswith("no deliveries\n")
    assert cli.main(["publish", "status", "1.2.3", "amended", "--model-version", "v1"]) == 1
    assert "no published report" in capsys.readouterr().err


def test_purge_images_prints_hashed_references_and_a_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    settings = HilumSettings()
    upgrade_database(settings.database_url)
    sessions, store = open_sessions(settings), open_object_store(settings)
    record_study(sessions, "1.2.840.7", PatientInfo("P1", "HOSP", "", None, ""), None, view_positions=("PA", "LL"))
    with sessions.begin() as session:
        row = studies.require_study(session, "1.2.840.7")
        row.state, row.received_at = "REPORTED", datetime.now(UTC) - timedelta(days=40)
        keys = [instance.object_key for instance in studies.instances_of(session, "1.2.840.7")]
        for instance in studies.instances_of(session, "1.2.840.7"):
            instance.received_at = row.received_at
    for key in keys:
        store.put(key, bytes(600_000))

    assert cli.main(["purge", "images", "--older-than", "30", "--dry-run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert dry[0].startswith(f"would purge  study {study_ref('1.2.840.7')}  REPORTED  received ")
    assert dry[1:] == ["1 studies, 2 images would be purged (1.2 MB); dry run, nothing changed"]
    assert all(store.exists(key) for key in keys)
    assert cli.main(["purge", "images", "--older-than", "30"]) == 0
    purged = capsys.readouterr().out
    assert purged.endswith("\n1 studies, 2 images purged (1.2 MB)\n") and "1.2.840.7" not in purged
    assert not any(store.exists(key) for key in keys)
    assert cli.main(["purge", "images", "--older-than", "30"]) == 0
    assert capsys.readouterr().out == "0 studies, 0 images purged (0.0 MB)\n"


def test_the_pull_loop_beats_its_heartbeat_while_the_pacs_does_not_answer(tmp_settings: HilumSettings) -> None:
    heartbeat = tmp_settings.storage.data_dir / "heartbeat"
    settings = tmp_settings.model_copy(update={
        "pacs": PacsSection(dicomweb_url=f"http://127.0.0.1:{free_port()}/dicom-web"),
        "health": HealthSection(heartbeat_file=heartbeat),
    })
    command = [sys.executable, "-m", "hilum.cli", "pull", "--every", "0.2"]
    with subprocess.Popen(command, env={**os.environ, **settings_env(settings)}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as puller:
        try:
            deadline = time.monotonic() + 30
            while not heartbeat.exists() and time.monotonic() < deadline and puller.poll() is None:
                time.sleep(0.05)
            first = heartbeat.stat().st_mtime_ns  # the first poll failed, and it beat
            while heartbeat.stat().st_mtime_ns == first and time.monotonic() < deadline:
                time.sleep(0.05)
            assert heartbeat.stat().st_mtime_ns > first  # and the failing polls go on beating
            puller.send_signal(signal.SIGTERM)
            assert puller.wait(timeout=30) == 0
        finally:
            if puller.poll() is None:
                puller.kill()


def test_hilum_processes_do_their_numerics_on_one_thread_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in cli.NUMERIC_THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # an operator's choice
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "4"


def test_a_worker_of_stages_that_cannot_share_one_is_refused_before_it_starts() -> None:
    with pytest.raises(SystemExit, match="^hilum worker: a worker needs its stages, each named once: priors priors$"):
        cli.main(["worker", "priors", "priors"])
