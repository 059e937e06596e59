"""Child processes of the embedded stack: started with a log file, stopped politely, then firmly."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A process of the stack could not start, or stopped; the message names it and ends with its log tail."""


class ManagedProcess:
    """One long-running child process whose output goes to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._terminated = False

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A new session, so a terminal's Ctrl-C reaches the supervisor, which stops children in order.
            self._terminated = False
            self._process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self._process.poll() if self._process else None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def terminate(self) -> None:
        """Send SIGTERM to the process itself, once, without waiting; stop() waits for it to end."""
        process = self._process
        if process is not None and process.poll() is None and not self._terminated:
            process.terminate()
            self._terminated = True

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process itself (it shuts its own children down: Celery lets a running task finish,
        Triton unloads its models), then SIGKILL its whole process group after timeout_s.
        """
        process = self._process
        if process is None or process.poll() is not None:
            return
        self.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
