"""Child processes of the embedded stack: started with a log file, stopped politely, then firmly."""

from __future__ import annotations

import os
import signal
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

from hilum.common.polling import wait_until

POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 40


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

    def kill(self) -> None:
        """SIGKILL the process's whole group now, as a crash or an out-of-memory kill would, and reap it; start() may
        run it again (the fault tests kill workers mid-task)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

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


class LoopbackServer(ABC):
    """A server process on loopback that we start, wait for until it answers, and stop; start, stop, or `with`.

    A subclass says how to tell it answers (answers()) and launches it from start() with _launch().
    """

    def __init__(self, label: str, process_name: str, log_path: Path) -> None:
        # label names the server in messages ("the FHIR peer"); process_name names its ManagedProcess.
        self.label = label
        self.process_name = process_name
        self.log_path = log_path
        self._process: ManagedProcess | None = None

    @abstractmethod
    def start(self, timeout_s: float = 30.0) -> None:
        """Launch the server and wait until it answers; raises ProcessFailed with the log tail."""

    @abstractmethod
    def answers(self) -> bool:
        """Whether this server (not another on the same port) answers now."""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return self._process.log_tail(lines) if self._process else ""

    def stop(self) -> None:
        """SIGTERM the server (by its pid) and wait for it to end; SIGKILL if it does not."""
        if self._process is not None:
            self._process.stop()


    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _refuse_if_running(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.label} is already running")

    def _launch(self, argv: list[str], env: dict[str, str] | None, timeout_s: float, what: str) -> None:
        """Start argv (its output to log_path) and wait until answers(); `what` says what is awaited.

        Raises ProcessFailed with the log tail if the process exits first, or stops it and raises ProcessFailed
        if it does not answer within timeout_s.
        """
        self._process = ManagedProcess(self.process_name, argv, self.log_path, env=env)
        self._process.start()
        try:
            wait_until(self.answers, timeout_s, POLL_INTERVAL_S, what, on_poll=self._raise_if_exited)
        except TimeoutError as exc:
            self.stop()
            raise ProcessFailed(f"{exc}:\n{self.log_tail()}") from exc

    def _raise_if_exited(self) -> None:
        if self._process is not None and (code := self._process.exited()) is not None:
            raise ProcessFailed(f"{self.label} exited with {code}:\n{self.log_tail()}")
