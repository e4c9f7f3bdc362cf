"""`settle_heap`: the collector set for a long-running process, its garbage still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ghlsync._heap import YOUNG_THRESHOLD, settle_heap


class _Node:
    """An object that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """An unreachable two-object cycle: only the collector can free it."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_freezes_what_is_alive_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    kept = _Node()
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(kept) and not any(o is kept for o in gc.get_objects())  # frozen
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


def test_never_lowers_a_higher_young_threshold() -> None:
    gc.set_threshold(YOUNG_THRESHOLD * 2, 5, 7)
    settle_heap()
    assert gc.get_threshold() == (YOUNG_THRESHOLD * 2, 5, 7)


def test_garbage_from_before_is_collected_not_frozen() -> None:
    before = _cycle()
    settle_heap()
    assert before() is None


def test_cycles_made_afterwards_are_still_collected() -> None:
    settle_heap()
    after = _cycle()
    assert after() is not None  # waits for a collection now, as before, just a later one
    gc.collect()
    assert after() is None
