"""Poll a condition until it holds or a deadline passes: the one waiting loop every start-up and wait uses."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    timeout_s: float,
    interval_s: float,
    what: str | Callable[[], str],
    on_poll: Callable[[], None] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call condition every interval_s seconds until it returns something truthy, and return that.

    condition is called at least once, and once more at the deadline. on_poll runs before every call
    of condition and may raise to stop waiting (e.g. the process being waited for has exited).
    timeout_s may be math.inf (wait until condition holds or on_poll raises).
    what says what is awaited ("redis-server on 127.0.0.1:6390 to answer PING"); a function is asked
    only at the deadline, so it can say what is still missing.
    Raises TimeoutError("timed out after <timeout_s> s waiting for <what>").
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, not {interval_s}")
    if math.isnan(timeout_s) or timeout_s < 0:
        raise ValueError(f"timeout_s must be zero or more, not {timeout_s}")
    deadline = clock() + timeout_s
    while True:
        if on_poll is not None:
            on_poll()
        result = condition()
        if result:
            return result
        remaining = deadline - clock()
        if remaining <= 0:
            awaited = what if isinstance(what, str) else what()
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {awaited}")
        sleep(min(interval_s, remaining))
