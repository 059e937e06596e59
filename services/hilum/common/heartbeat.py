"""Liveness for processes without a port: a file touched while the process does its work, whose age a probe checks.

Kubernetes probes it with `test $(( $(date +%s) - $(stat -c %Y FILE) )) -lt 60`. A Celery worker beats from
its own event loop (the hub's timer), so a worker whose main loop is stuck stops beating; the loops of the
assembler and the PACS puller beat as they wait on their stop event (stop_event).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps

from hilum.common.settings import HealthSection

log = logging.getLogger(__name__)


def beat(path: Path) -> None:
    """Set path's modification time to now, creating it (and its folder) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def heartbeat_step(path: Path, interval_s: float) -> type[bootsteps.StartStopStep]:
    """A worker bootstep beating path every interval_s on the worker's event-loop timer.

    The timer fires only while the event loop runs, so the first beat comes once the worker is ready (consuming)
    and beats stop while the loop is stuck, or reconnecting to the broker. A file left by an earlier process is
    removed at start: it says nothing about this one.
    """

    class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
        """Beats the heartbeat file from the worker's event loop."""

        # The hub (present when the worker runs an event loop, as it does on Redis) owns the timer the loop fires.
        requires = ("celery.worker.components:Hub",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.entries: list[Any] = []

        def start(self, worker: Any) -> None:
            path.unlink(missing_ok=True)
            timer = worker.hub.timer if worker.hub is not None else worker.timer
            self.entries = [timer.call_after(0.0, beat, (path,)),  # the loop's first turn: the worker is ready
                            timer.call_repeatedly(interval_s, beat, (path,))]
            log.info("worker heartbeat every %g s", interval_s)

        def stop(self, worker: Any) -> None:
            for entry in self.entries:
                entry.cancel()
            self.entries = []

    return Heartbeat


def install_worker_heartbeat(app: Celery, section: HealthSection) -> None:
    """Make app's workers beat section.heartbeat_file every section.heartbeat_interval_s; nothing when it is unset."""
    if section.heartbeat_file is not None:
        app.steps["worker"].add(heartbeat_step(section.heartbeat_file, section.heartbeat_interval_s))


class BeatingStop(threading.Event):
    """A loop's stop event that beats the heartbeat file as the loop waits on it.

    A loop that waits after every round, failed ones too (alive, only waiting), beats once per round; a long wait
    beats again every interval_s, so a round interval longer than the probe's limit does not read as stuck.
    """

    def __init__(self, path: Path, interval_s: float) -> None:
        super().__init__()
        self._path = path
        self._interval_s = interval_s

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            beat(self._path)
            remaining = self._interval_s if deadline is None else deadline - time.monotonic()
            if super().wait(min(self._interval_s, max(remaining, 0.0))):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False


def stop_event(section: HealthSection) -> threading.Event:
    """The stop event of a process's main loop: it beats section.heartbeat_file while waited on, when one is set."""
    if section.heartbeat_file is None:
        return threading.Event()
    return BeatingStop(section.heartbeat_file, section.heartbeat_interval_s)
