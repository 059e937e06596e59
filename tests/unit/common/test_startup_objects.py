"""What a process made while starting leaves the collector's full collections; its garbage is collected first."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from hilum.common.startup_objects import freeze_startup_objects


class _Node:
    """A container the collector tracks; two of them make a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The collector's permanent generation emptied again after the test, as other tests expect."""
    yield
    gc.unfreeze()


def test_what_lives_is_frozen_and_what_starting_left_as_garbage_is_collected_first(unfrozen: None) -> None:
    kept = _Node()
    cycle = _Node()
    cycle.other = _Node()
    cycle.other.other = cycle  # garbage only the collector can free
    left = weakref.ref(cycle)
    del cycle
    frozen = freeze_startup_objects()
    assert left() is None
    assert frozen == gc.get_freeze_count() > 0
    assert all(found is not kept for found in gc.get_objects())  # out of every generation the collector walks
    gc.collect()
    assert kept.other is None  # frozen, not freed
