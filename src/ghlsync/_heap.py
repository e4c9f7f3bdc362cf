"""The cyclic garbage collector, set for a long-running process (`serve`, `worker`).

CPython's collector runs a young collection whenever 700 more container objects have been
made than freed, and now and then a full one that walks every object the process holds.
A started `ghlsync serve` holds ~160,000 of them (SQLAlchemy, pydantic, FastAPI, the
compiled mapping), nearly all made while starting and never freed; and syncing a change
leaves a few dozen objects in reference cycles (tasks and their callbacks, exceptions
and their frames) for the collector to find. Measured on the SQLite serve shape
(docs/benchmarks.md, issue 13): per 2,000 new customers ~150 young collections
(35-90 ms) and one full one (130-160 ms), together ~7% of the process's CPU.

`settle_heap()`, called once everything the process keeps has been built, collects what
starting left behind, then freezes the rest (`gc.freeze()`: the collector never walks those
objects again) and raises the young threshold, so the cycles of a few hundred changes are
found by one collection instead of one every 700 objects. Nothing else changes: cycles are
still collected, later and together. What it costs: garbage waits for up to
`YOUNG_THRESHOLD` surplus objects (a few MB at most), and an object alive at the call that
later ends in an unreachable cycle is never freed (what starting builds lives as long as
the process; should some of it be replaced while running, the old one would stay).
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_heap"]

YOUNG_THRESHOLD = 10_000
"""Surplus container allocations between young collections (CPython's default: 700)."""


def settle_heap() -> None:
    """Collect, freeze what is left, and raise the young threshold (never lower it)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
