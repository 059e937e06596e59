"""A circuit breaker for calls to Triton: after a run of failures, stop calling for a while.

Closed: calls go through; `failure_threshold` failures in a row open it. Open: calls are refused at once for
the open period, which doubles on every failed probe (from `first_open_s` up to `max_open_s`), so a Triton
that is down is asked once per period instead of once per waiting study. When the period is over the breaker is
half-open: one call goes through as a probe while the others are still refused; the probe's success closes it,
its failure opens it again for longer. Thread-safe: the inference worker's threads share one breaker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    """The breaker refuses the call; retry_after_s is how long until it lets a probe through."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"Triton is not being called for {retry_after_s:.1f} s after repeated failures")
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Counts failures in a row and refuses calls while open (see the module docstring)."""

    def __init__(
        self,
        failure_threshold: int = 3,
        first_open_s: float = 2.0,
        max_open_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or first_open_s <= 0 or max_open_s < first_open_s:
            raise ValueError("need failure_threshold >= 1 and 0 < first_open_s <= max_open_s")
        self._threshold = failure_threshold
        self._first_open_s = first_open_s
        self._max_open_s = max_open_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_s = first_open_s
        self._opened_at: float | None = None  # None: closed
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """Closed, open (refusing every call) or half-open (its period over, or its one probe in flight)."""
        with self._lock:
            return self._state()

    def before_call(self) -> None:
        """Let the call through, or raise CircuitOpen. Half-open, only one caller at a time is let through."""
        with self._lock:
            state = self._state()
            if state == BreakerState.CLOSED:
                return
            if state == BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                return
            raise CircuitOpen(self._retry_after())

    def record_success(self) -> None:
        """A call reached Triton and it answered: close the breaker and forget past failures."""
        with self._lock:
            self._failures, self._opened_at, self._probing, self._open_s = 0, None, False, self._first_open_s

    def record_failure(self) -> None:
        """A call could not reach Triton: open after the threshold, or again (for twice as long) after a probe."""
        with self._lock:
            if self._probing:
                self._probing = False
                self._open_s = min(self._max_open_s, self._open_s * 2)
                self._opened_at = self._clock()
                return
            self._failures += 1
            if self._opened_at is None and self._failures >= self._threshold:
                self._opened_at = self._clock()

    def retry_after_s(self) -> float:
        """How long a refused caller should wait: the rest of the open period, or a whole one while a probe runs."""
        with self._lock:
            return self._retry_after()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self._open_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def _retry_after(self) -> float:
        if self._opened_at is None:
            return 0.0
        remaining = self._opened_at + self._open_s - self._clock()
        return remaining if remaining > 0 else self._open_s
