"""The study state rules: forward only, FAILED until resubmitted, a report is never taken back."""

from __future__ import annotations

import pytest

from hilum.common import study_state as s


@pytest.mark.parametrize(("current", "reached", "expected"), [
    (s.RECEIVED, s.INFERRED, s.INFERRED),
    (s.RECEIVED, s.REPORTED, s.REPORTED),  # a stage may skip ahead (e.g. a redelivered later stage)
    (s.COMPARED, s.INFERRED, s.COMPARED),  # never backwards
    (s.REPORTED, s.RECEIVED, s.REPORTED),
    (s.FAILED, s.REPORTED, s.FAILED),  # only a resubmission leaves FAILED
    (s.INFERRED, s.FAILED, s.INFERRED),  # failing goes through failed(), not advanced()
    (s.RECEIVED, s.ANALYSED, s.ANALYSED),  # a comparison-only prior's one stage
    (s.ANALYSED, s.INFERRED, s.ANALYSED),  # it never enters the reporting pipeline
    (s.ANALYSED, s.REPORTED, s.ANALYSED),
    (s.FAILED, s.ANALYSED, s.FAILED),
])
def test_advanced_moves_forward_only(current: s.State, reached: s.State, expected: s.State) -> None:
    assert s.advanced(current, reached) == expected


def test_restart_and_fail() -> None:
    assert s.restarted(s.FAILED) == s.RECEIVED
    assert s.restarted(s.COMPARED) == s.COMPARED
    assert s.failed(s.INFERRED) == s.FAILED
    assert s.failed(s.REPORTED) == s.REPORTED


def test_names_round_trip_and_sets() -> None:
    for state in (*s.PIPELINE, s.ANALYSED, s.FAILED):
        assert s.state_of(s.name_of(state)) == state
    assert s.name_of(s.REPORTED) == "REPORTED"
    with pytest.raises(ValueError):
        s.state_of("DONE")
    assert s.IN_FLIGHT.isdisjoint(s.TERMINAL)
    assert s.IN_FLIGHT | s.TERMINAL == {*s.PIPELINE, *s.COMPARISON_ONLY, s.FAILED}
