"""wait_until: returns what the condition gave, keeps to its deadline, names what it waited for."""

from __future__ import annotations

import math
import time

import pytest

from hilum.common.polling import wait_until


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_truthy_result_after_polling_at_the_interval() -> None:
    clock = FakeClock()
    answers = iter([None, 0, "", "ready", "later"])

    result = wait_until(lambda: next(answers), 10.0, 0.5, "the answer", clock=clock, sleep=clock.sleep)

    assert result == "ready"
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_times_out_at_the_deadline_naming_what_was_awaited() -> None:
    clock = FakeClock()
    calls = 0

    def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    with pytest.raises(TimeoutError, match=r"^timed out after 1 s waiting for redis-server to answer PING$"):
        wait_until(never, 1.0, 0.375, "redis-server to answer PING", clock=clock, sleep=clock.sleep)

    # Checked at 0, 0.375, 0.75 and once more exactly at the deadline: the last sleep is cut short.
    assert calls == 4
    assert clock.sleeps == [0.375, 0.375, 0.25]
    assert clock.now == 101.0


def test_a_description_function_is_asked_at_the_deadline() -> None:
    clock = FakeClock()
    pending = ["cds", "grpc.priors"]

    def some_answer() -> bool:
        pending[:] = pending[1:]
        return False

    with pytest.raises(TimeoutError, match=r"waiting for doors to answer: grpc\.priors$"):
        wait_until(some_answer, 0.0, 1.0, lambda: "doors to answer: " + ", ".join(pending) if pending else "nothing",
                   clock=clock, sleep=clock.sleep)


def test_zero_timeout_still_checks_once() -> None:
    clock = FakeClock()
    assert wait_until(lambda: 42, 0.0, 1.0, "the answer", clock=clock, sleep=clock.sleep) == 42
    assert clock.sleeps == []


def test_on_poll_runs_before_every_check_and_its_error_stops_the_wait() -> None:
    clock = FakeClock()
    events: list[str] = []

    def on_poll() -> None:
        events.append("poll")
        if len(events) > 4:
            raise RuntimeError("tritonserver exited with code 1")

    def condition() -> bool:
        events.append("check")
        return False

    with pytest.raises(RuntimeError, match="tritonserver exited"):
        wait_until(condition, 60.0, 1.0, "tritonserver", on_poll, clock=clock, sleep=clock.sleep)
    assert events == ["poll", "check", "poll", "check", "poll"]


def test_an_infinite_timeout_waits_until_the_condition_holds() -> None:
    clock = FakeClock()
    answers = iter([None] * 1000 + ["SIGTERM"])
    assert wait_until(lambda: next(answers), math.inf, 5.0, "a stop signal", clock=clock,
                      sleep=clock.sleep) == "SIGTERM"
    assert len(clock.sleeps) == 1000


def test_real_clock_and_sleep_by_default() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, 0.2, 0.05, "nothing")
    assert 0.2 <= time.monotonic() - started < 2.0


@pytest.mark.parametrize(("timeout_s", "interval_s"), [(1.0, 0.0), (1.0, -1.0), (-1.0, 0.1), (math.nan, 0.1)])
def test_nonsense_timings_are_refused(timeout_s: float, interval_s: float) -> None:
    with pytest.raises(ValueError):
        wait_until(lambda: True, timeout_s, interval_s, "anything")
