"""Child processes of the embedded stack: logged, observed, and stopped (politely, then firmly)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hilum.runtime.processes import ManagedProcess


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
