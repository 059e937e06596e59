"""`hilum up`: the embedded stack in the foreground until SIGTERM or Ctrl-C, its doors in endpoints.json.

`hilum demo` is this plus the sample studies: both prepare the data directory, start the stack under
the same stop signals, and stop it the same way.
"""

from __future__ import annotations

import math
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

from hilum.common.db.session import upgrade_database
from hilum.common.logs import ensure_reference_key
from hilum.common.polling import wait_until
from hilum.common.settings import HilumSettings
from hilum.common.wording import DEMO_NOTICE
from hilum.inference.devices_export import ensure_devices_model
from hilum.inference.model_export import ensure_findings_model
from hilum.runtime.endpoints import endpoints_path
from hilum.runtime.ports import PortUnavailable
from hilum.runtime.processes import ProcessFailed
from hilum.runtime.stack import EmbeddedStack, StackAlreadyRunning, preflight

Print = Callable[[str], None]
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None  # what signal.signal returns
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SUPERVISE_INTERVAL_S = 0.5
# What `hilum up` and `hilum demo` report in one message, not a traceback: a person can act on each.
STACK_ERRORS: tuple[type[Exception], ...] = (PortUnavailable, StackAlreadyRunning, ProcessFailed, TimeoutError)


class Stopped(Exception):
    """A stop signal arrived before the work was done; the stack has been stopped."""

    def __init__(self, received: signal.Signals) -> None:
        super().__init__(f"stopped by {received.name}")
        self.signal = received


class StopSignals:
    """While entered, SIGTERM and SIGINT only record that a stop was asked for, so the supervisor stops its
    children in order rather than dying half-way; check() raises Stopped once one has arrived.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Handler] = {}

    def check(self) -> None:
        """Raise Stopped if a stop signal has arrived."""
        if self.received is not None:
            raise Stopped(self.received)

    def __enter__(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _record(self, signum: int, frame: FrameType | None) -> None:
        # Only an assignment: a handler runs between any two bytecodes of the main thread.
        if self.received is None:
            self.received = signal.Signals(signum)


def prepare_stack(settings: HilumSettings, fresh: bool, say: Print) -> None:
    """The reference key (unless configured), database schema and model weights (demo weights exported when none
    are provisioned).

    fresh deletes the data and output folders first (and with them the key: references start afresh).
    """
    if fresh:
        shutil.rmtree(settings.storage.data_dir, ignore_errors=True)
        shutil.rmtree(settings.storage.output_dir, ignore_errors=True)
    if not settings.references.key:
        ensure_reference_key(settings.storage.data_dir)
    upgrade_database(settings.database_url)
    repository = settings.triton.model_repository
    for name, ensure in (("cxr_findings", ensure_findings_model), ("cxr_devices", ensure_devices_model)):
        manifest = ensure(repository)
        if manifest.demo:
            say(f"Model {name}: version {manifest.version} — {DEMO_NOTICE}")


@contextmanager
def running_stack(settings: HilumSettings, stop: StopSignals) -> Iterator[EmbeddedStack]:
    """The embedded stack, started (endpoints.json written) and stopped again on leaving, however left.

    A stop signal during start-up stops what started and raises Stopped.
    """
    stack = EmbeddedStack(settings)
    stack.start(check=stop.check)
    try:
        yield stack
    finally:
        stack.stop()


def supervise(stack: EmbeddedStack, stop: StopSignals) -> signal.Signals:
    """Wait for a stop signal and return it; raises ProcessFailed when a part of the stack stops by itself."""
    return wait_until(lambda: stop.received, math.inf, SUPERVISE_INTERVAL_S, "a stop signal",
                      on_poll=stack.check_alive)


def door_lines(stack: EmbeddedStack) -> list[str]:
    """One line per door (and the logs), for a person."""
    urls = stack.urls()
    width = max(map(len, urls), default=0)
    return [f"  {name:{width}} {address}" for name, address in urls.items()]


def say_now(line: str) -> None:
    """print, flushed: a supervisor's output is read while it runs, often through a pipe."""
    print(line, flush=True)


def run_up(settings: HilumSettings, say: Print = say_now) -> int:
    """Run the stack until SIGTERM or SIGINT, then stop it; returns the exit code (0 after a signal).

    Raises one of STACK_ERRORS when it cannot start, or when a part of it stops by itself.
    """
    preflight(settings)
    prepare_stack(settings, fresh=False, say=say)
    with StopSignals() as stop:
        say(f"Starting the embedded stack (logs in {settings.storage.data_dir / 'logs'}) ...")
        try:
            with running_stack(settings, stop) as stack:
                say(f"Hilum is up; its doors are in {endpoints_path(settings.storage.data_dir)}:")
                for line in door_lines(stack):
                    say(line)
                say("SIGTERM or Ctrl-C stops it.")
                received = supervise(stack, stop)
        except Stopped as stopped:  # during start-up
            received = stopped.signal
        say(f"Stopped ({received.name}).")
    return 0
