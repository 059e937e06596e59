"""A study's place in the pipeline and the only rules for moving it: forward only, FAILED until resubmitted.

The enum is messages.proto's StudyState; the database stores its short name ("RECEIVED", …).
"""

from __future__ import annotations

from typing import TypeAlias

from hilum.v1 import messages_pb2

StudyState = messages_pb2.StudyState
State: TypeAlias = messages_pb2.StudyState.ValueType

RECEIVED = StudyState.STUDY_STATE_RECEIVED
INFERRED = StudyState.STUDY_STATE_INFERRED
COMPARED = StudyState.STUDY_STATE_COMPARED
REPORTED = StudyState.STUDY_STATE_REPORTED
FAILED = StudyState.STUDY_STATE_FAILED
# A prior fetched from a PACS for comparison only rests here once inference stored its findings.
ANALYSED = StudyState.STUDY_STATE_ANALYSED

# The order a study moves through; a stage never moves a study backwards (redeliveries are harmless).
PIPELINE: tuple[State, ...] = (RECEIVED, INFERRED, COMPARED, REPORTED)
# The order a comparison-only prior moves through: received, then analysed.
COMPARISON_ONLY: tuple[State, ...] = (RECEIVED, ANALYSED)
# States in which some stage still has work to do for the study.
IN_FLIGHT: frozenset[State] = frozenset({RECEIVED, INFERRED, COMPARED})
# States a study rests in until something new arrives.
TERMINAL: frozenset[State] = frozenset({REPORTED, ANALYSED, FAILED})


def name_of(state: State) -> str:
    """The stored name of a state, e.g. "REPORTED"."""
    return StudyState.Name(state).removeprefix("STUDY_STATE_")


def state_of(name: str) -> State:
    """The state of a stored name; raises ValueError for a name that is not a state."""
    return StudyState.Value(f"STUDY_STATE_{name}")


def advanced(current: State, target: State) -> State:
    """The state after a stage finished `target`: later of the two in its order (PIPELINE, or COMPARISON_ONLY
    for ANALYSED), and FAILED stays FAILED."""
    order = COMPARISON_ONLY if target == ANALYSED else PIPELINE
    if current == FAILED or target not in order or current not in order:
        return current
    if order.index(current) >= order.index(target):
        return current
    return target


def restarted(current: State) -> State:
    """The state when new instances or a resubmission arrive: a FAILED study starts again from RECEIVED."""
    return RECEIVED if current == FAILED else current


def failed(current: State) -> State:
    """The state after a stage gave up: FAILED, except that a REPORTED study keeps its report."""
    return current if current == REPORTED else FAILED
