"""The two kinds of stage failure every door understands: retry later, or never."""

from __future__ import annotations


class TransientError(Exception):
    """A dependency is briefly unavailable (Triton, Redis, a prior still in flight): retry with backoff.

    With retry_after_s set, the raiser bounds the wait itself (e.g. by a deadline), so the retry does
    not count against the queue's retry limit.
    """

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentError(Exception):
    """The message can never succeed (unreadable image, missing study): record it, do not retry."""
