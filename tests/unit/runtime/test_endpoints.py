"""endpoints.json: written whole or not at all, read back typed, stale when its pid is gone, removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from hilum.common.polling import wait_until
from hilum.runtime.endpoints import (
    Endpoints,
    TritonEndpoints,
    endpoints_path,
    live_endpoints,
    pid_alive,
    read_endpoints,
    remove_endpoints,
    write_endpoints,
)

STARTED = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


def _endpoints(pid: int | None = None, **doors: object) -> Endpoints:
    return Endpoints.model_validate({"pid": os.getpid() if pid is None else pid, "started_at": STARTED, **doors})


def _exited_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_written_file_is_the_documented_json_without_absent_doors(tmp_path: Path) -> None:
    endpoints = _endpoints(
        pid=12345, cds="http://127.0.0.1:8080", ingestion_grpc="127.0.0.1:50051",
        grpc={"inference": "127.0.0.1:50052", "priors": "127.0.0.1:50053", "reporting": "127.0.0.1:50054"},
        triton=TritonEndpoints(grpc="127.0.0.1:8101", http="http://127.0.0.1:8100",
                               metrics="http://127.0.0.1:8102/metrics"),
    )

    path = write_endpoints(tmp_path / "data", endpoints)

    assert path == tmp_path / "data" / "endpoints.json" == endpoints_path(tmp_path / "data")
    assert json.loads(path.read_text()) == {
        "pid": 12345, "started_at": "2026-12-01T09:00:00Z",
        "cds": "http://127.0.0.1:8080", "ingestion_grpc": "127.0.0.1:50051",
        "grpc": {"inference": "127.0.0.1:50052", "priors": "127.0.0.1:50053", "reporting": "127.0.0.1:50054"},
        "triton": {"grpc": "127.0.0.1:8101", "http": "http://127.0.0.1:8100",
                   "metrics": "http://127.0.0.1:8102/metrics"},
    }  # no "redis": a door that does not exist has no key


def test_started_at_is_written_in_utc_with_z(tmp_path: Path) -> None:
    in_paris = STARTED.astimezone(timezone(timedelta(hours=1)))
    write_endpoints(tmp_path, Endpoints(pid=1, started_at=in_paris))
    assert json.loads(endpoints_path(tmp_path).read_text())["started_at"] == "2026-12-01T09:00:00Z"


def test_read_gives_back_what_was_written(tmp_path: Path) -> None:
    written = _endpoints(cds="http://127.0.0.1:8080", redis="redis://127.0.0.1:6390/0",
                         grpc={"priors": "127.0.0.1:50053"})
    write_endpoints(tmp_path, written)

    read = read_endpoints(tmp_path)

    assert read == written
    assert read is not None and read.started_at == STARTED and read.grpc == {"priors": "127.0.0.1:50053"}


def test_write_replaces_the_file_by_renaming_a_complete_synced_temp_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_endpoints(tmp_path, _endpoints(cds="http://127.0.0.1:1111"))
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", ""))
        real_fsync(fd)

    def replace(source: str, destination: str) -> None:
        # Just before the rename, readers still see the old file whole, and the new one is complete.
        assert json.loads(endpoints_path(tmp_path).read_text())["cds"] == "http://127.0.0.1:1111"
        assert json.loads(Path(source).read_text())["cds"] == "http://127.0.0.1:2222"
        events.append(("replace", str(Path(source).parent)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_endpoints(tmp_path, _endpoints(cds="http://127.0.0.1:2222"))

    assert events[:2] == [("fsync", ""), ("replace", str(tmp_path))]  # synced before the rename, same folder
    assert events[2:] == [("fsync", "")]  # then the folder, so the rename itself is durable
    assert [p.name for p in tmp_path.iterdir()] == ["endpoints.json"]


def test_a_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_endpoints(tmp_path, _endpoints(cds="http://127.0.0.1:1111"))

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_endpoints(tmp_path, _endpoints(cds="http://127.0.0.1:2222"))

    assert [p.name for p in tmp_path.iterdir()] == ["endpoints.json"]
    assert json.loads(endpoints_path(tmp_path).read_text())["cds"] == "http://127.0.0.1:1111"


def test_no_file_reads_as_none(tmp_path: Path) -> None:
    assert read_endpoints(tmp_path / "never-created") is None
    assert live_endpoints(tmp_path / "never-created") is None


def test_a_file_from_this_running_process_is_live(tmp_path: Path) -> None:
    write_endpoints(tmp_path, _endpoints())
    read = read_endpoints(tmp_path)
    assert read is not None and read.live
    assert live_endpoints(tmp_path) == read


def test_a_file_whose_process_is_gone_is_stale(tmp_path: Path) -> None:
    write_endpoints(tmp_path, _endpoints(pid=_exited_pid(), cds="http://127.0.0.1:8080"))

    read = read_endpoints(tmp_path)

    assert read is not None and read.cds == "http://127.0.0.1:8080"
    assert not read.live
    assert live_endpoints(tmp_path) is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are recognised through /proc")
def test_an_exited_but_unreaped_process_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z",
                   10.0, 0.02, "the child to exit")
        assert not pid_alive(child.pid)
    finally:
        child.wait()


@pytest.mark.parametrize("pid", [0, -1])
def test_nonsense_pids_are_not_alive(pid: int) -> None:
    assert not pid_alive(pid)


def test_remove_deletes_the_file_and_tolerates_its_absence(tmp_path: Path) -> None:
    write_endpoints(tmp_path, _endpoints())
    remove_endpoints(tmp_path)
    assert not endpoints_path(tmp_path).exists()
    assert read_endpoints(tmp_path) is None
    remove_endpoints(tmp_path)


def test_doors_a_newer_version_adds_are_kept_not_refused(tmp_path: Path) -> None:
    endpoints_path(tmp_path).write_text(json.dumps({
        "pid": 7, "started_at": "2026-12-01T09:00:00Z", "cds": "http://127.0.0.1:8080",
        "mllp": {"host": "127.0.0.1", "port": 2575},
    }))
    read = read_endpoints(tmp_path)
    assert read is not None and read.model_extra == {"mllp": {"host": "127.0.0.1", "port": 2575}}


@pytest.mark.parametrize("text", [
    '{"started_at": "2026-12-01T09:00:00Z"}',  # no pid
    '{"pid": 7, "started_at": "2026-12-01T09:00:00"}',  # a time without its zone
    '{"pid": 7, "started_at": "2026-12-01T09:00:00Z", "triton": {"grpc": "127.0.0.1:8101"}}',
    "not json",
])
def test_a_file_that_is_not_an_endpoints_file_is_refused(tmp_path: Path, text: str) -> None:
    endpoints_path(tmp_path).write_text(text)
    with pytest.raises(ValidationError):
        read_endpoints(tmp_path)
