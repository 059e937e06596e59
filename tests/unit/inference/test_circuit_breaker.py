"""The circuit breaker in front of Triton: opens after a run of failures, refuses calls while open, lets one
probe through when its period is over, and opens for twice as long when the probe fails."""

from __future__ import annotations

import threading

import pytest

from hilum.inference.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpen


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, first_open_s=2.0, max_open_s=5.0, clock=clock)


def test_it_opens_after_the_threshold_of_failures_in_a_row_and_a_success_resets_the_count() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    breaker.record_success()  # the run is broken: counting starts again
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == BreakerState.OPEN
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_after_s == pytest.approx(2.0)
    clock.now += 1.5
    assert breaker.retry_after_s() == pytest.approx(0.5)


def test_after_its_period_one_probe_goes_through_and_its_success_closes_it() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 2.0
    assert breaker.state == BreakerState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # everyone else waits while it runs
    breaker.record_success()
    assert breaker.state == BreakerState.CLOSED
    breaker.before_call()


def test_a_failed_probe_opens_it_for_twice_as_long_up_to_the_maximum() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    periods = []
    for _ in range(3):
        clock.now += 10.0
        breaker.before_call()
        breaker.record_failure()
        assert breaker.state == BreakerState.OPEN
        periods.append(breaker.retry_after_s())
    assert periods == [pytest.approx(4.0), pytest.approx(5.0), pytest.approx(5.0)]
    clock.now += 5.0
    breaker.before_call()
    breaker.record_success()
    for _ in range(3):
        breaker.record_failure()
    assert breaker.retry_after_s() == pytest.approx(2.0)  # a success starts the periods over


def test_threads_arriving_together_at_a_half_open_breaker_send_one_probe() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 2.0
    start, passed, refused = threading.Barrier(8), [], []

    def call() -> None:
        start.wait()
        try:
            breaker.before_call()
            passed.append(1)
        except CircuitOpen:
            refused.append(1)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(passed), len(refused)) == (1, 7)


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(first_open_s=10.0, max_open_s=5.0)
