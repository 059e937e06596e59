"""The two kinds of stage failure: a transient one may carry its own wait, and neither is the other."""

from __future__ import annotations

import pytest

from hilum.common.errors import PermanentError, TransientError


def test_a_transient_error_keeps_its_reason_and_has_no_wait_by_default() -> None:
    error = TransientError("Triton unavailable")
    assert str(error) == "Triton unavailable"
    assert error.retry_after_s is None


def test_a_transient_error_may_bound_its_own_wait() -> None:
    error = TransientError("the prior study is still being analysed", retry_after_s=2.0)
    assert error.retry_after_s == 2.0
    assert str(error) == "the prior study is still being analysed"


def test_a_permanent_error_keeps_its_reason() -> None:
    assert str(PermanentError("study not found")) == "study not found"


@pytest.mark.parametrize(("raised", "other"), [(TransientError("x"), PermanentError),
                                               (PermanentError("x"), TransientError)])
def test_neither_kind_is_caught_as_the_other(raised: Exception, other: type[Exception]) -> None:
    assert not isinstance(raised, other)
    with pytest.raises(type(raised)):
        try:
            raise raised
        except other:  # a retryable error must never be dead-lettered, nor the reverse
            pytest.fail(f"{type(raised).__name__} was caught as {other.__name__}")
