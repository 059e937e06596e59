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
