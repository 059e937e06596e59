"""Child processes of the embedded stack: logged, observed, and stopped (politely, then firmly)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from hilum.common.polling import wait_until
from hilum.runtime.ports import free_port, is_free
from hilum.runtime.processes import LoopbackServer, ManagedProcess, ProcessFailed


class _HttpServer(LoopbackServer):
    """python -m http.server on a free loopback port; `script` replaces it with another program, if given."""

    def __init__(self, work_dir: Path, script: str | None = None) -> None:
        super().__init__("the test server", "http-server", work_dir / "http-server.log")
        self.port = free_port()
        self.script = script

    def start(self, timeout_s: float = 10.0) -> None:
        self._refuse_if_running()
        argv = [sys.executable, "-c", self.script] if self.script else \
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.port)]
        self._launch(argv, None, timeout_s, f"the test server on port {self.port} to answer")

    def answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def _wait_exit(process: ManagedProcess) -> int:
    deadline = time.monotonic() + 10
    while (code := process.exited()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return code


def test_output_goes_to_the_log_and_exit_is_seen(tmp_path: Path) -> None:
    process = ManagedProcess("echo", [sys.executable, "-c", "print('hello'); raise SystemExit(3)"],
                             tmp_path / "logs" / "echo.log")
    process.start()
    assert _wait_exit(process) == 3
    assert process.log_tail() == "hello"


def test_stop_ends_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); " \
               "time.sleep(60)"
    process = ManagedProcess("stubborn", [sys.executable, "-c", stubborn], tmp_path / "stubborn.log")
    process.start()
    deadline = time.monotonic() + 10
    while "up" not in process.log_tail():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.stop(timeout_s=0.5)
    assert process.exited() is not None


def test_terminate_signals_once_without_waiting_and_stop_then_waits(tmp_path: Path) -> None:
    graceful = ("import signal, time; got = []; "
                "signal.signal(signal.SIGTERM, lambda *_: (got.append(1), print('term', flush=True))); "
                "print('up', flush=True)\nwhile not got: time.sleep(0.01)\ntime.sleep(0.5)")
    process = ManagedProcess("graceful", [sys.executable, "-c", graceful], tmp_path / "graceful.log")
    process.start()
    deadline = time.monotonic() + 10
    while "up" not in process.log_tail():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.terminate()
    assert process.running  # still finishing its work
    process.terminate()
    process.stop(timeout_s=10)
    assert process.exited() == 0  # it ended by itself, not by SIGKILL
    assert process.log_tail().splitlines() == ["up", "term"]  # one SIGTERM, however often asked


def test_kill_ends_the_process_and_its_children_at_once_and_start_runs_it_again(tmp_path: Path) -> None:
    parent = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              "print(child.pid, flush=True); time.sleep(60)")
    process = ManagedProcess("parent", [sys.executable, "-c", parent], tmp_path / "parent.log")
    process.start()
    wait_until(lambda: process.log_tail().strip(), timeout_s=10, interval_s=0.05, what="the child's pid")
    child_pid = int(process.log_tail().split()[-1])
    process.kill()
    assert process.exited() == -signal.SIGKILL  # at once, SIGTERM ignored or not
    wait_until(lambda: not _alive(child_pid), timeout_s=10, interval_s=0.05, what="its group to go with it")
    process.start()
    assert process.running
    process.stop(timeout_s=0.5)


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, killed and waiting for whoever reaps it, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_loopback_server_starts_answers_and_stops(tmp_path: Path) -> None:
    with _HttpServer(tmp_path) as server:
        assert server.running and server.answers() and server.pid is not None
        with pytest.raises(RuntimeError, match="the test server is already running"):
            server.start()
    assert not server.running and not server.answers()
    assert is_free("127.0.0.1", server.port)
    assert '"GET / HTTP/1.1" 200' in server.log_tail()


def test_a_loopback_server_that_exits_raises_with_its_log_tail(tmp_path: Path) -> None:
    server = _HttpServer(tmp_path, script="print('cannot bind', flush=True); raise SystemExit(2)")
    with pytest.raises(ProcessFailed, match=r"the test server exited with 2:\ncannot bind"):
        server.start()
    assert not server.running


def test_a_loopback_server_that_never_answers_is_stopped(tmp_path: Path) -> None:
    server = _HttpServer(tmp_path, script="import time; time.sleep(60)")
    with pytest.raises(ProcessFailed, match=r"timed out after 0.5 s waiting for the test server on port \d+ to answer"):
        server.start(timeout_s=0.5)
    assert not server.running
