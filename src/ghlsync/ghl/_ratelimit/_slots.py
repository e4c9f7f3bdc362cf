"""What one process keeps of a shared key: slots reserved in a batch, and the row last seen.

`SqlRateLimiter` may reserve several consecutive GCRA slots in one UPDATE when the key's pace
is fast (many slots fall within a few milliseconds). Each slot keeps the time the shared
schedule gave it, so handing them out locally is the same schedule a one-at-a-time taker
would have produced: the row has already moved past all of them, so other processes pace
after them, and the "any window holds at most `max`" bound of `_policy` still holds. A slot
not used within the catch-up a late waker is allowed is dropped (counted, never sent): a
stalled process must not fire a backlog of old slots together.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

# How far ahead of now a batch may reach. It bounds how long a pause or a lower limit set by
# another process can go unseen here; at GHL's usual pace (~100 ms apart) it means batches of 1.
BATCH_HORIZON_MS = 20.0
MAX_BATCH = 64


@dataclass(frozen=True, slots=True)
class Known:
    """The parts of a key's row this process last read or wrote (`observe` compares to it)."""

    max: int
    interval_ms: int
    daily_limit: int
    daily_remaining: int | None
    consecutive_429: int
    written_ms: int = 0  # when this process last wrote `observe`'s view back (0: never)


@dataclass
class KeySlots:
    """One key's local side: the lock of its single refiller and the slots it reserved."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    times: deque[float] = field(default_factory=deque)  # epoch ms each slot may go at
    catch_up_ms: float = 0.0
    waiting: int = 0  # callers inside `acquire`: how many slots the next batch may take

    def pop(self, now_ms: float) -> float | None:
        """The next usable slot's time (maybe ahead of now), dropping stale ones; None if out."""
        while self.times:
            at = self.times.popleft()
            if now_ms <= at + self.catch_up_ms:
                return at
        return None

    def fill(self, times: list[float], catch_up_ms: float) -> None:
        """Add the slots of a batch just taken from the shared row."""
        self.times.extend(times)
        self.catch_up_ms = catch_up_ms

    def drop(self) -> None:
        """Forget reserved slots (the pace changed or the key is paused): safe, never late."""
        self.times.clear()


def batch_size(wanted: int, emission_ms: float, tolerance_ms: float) -> int:
    """How many slots to reserve at once: no more than are wanted or fit the horizon."""
    by_time = math.floor((tolerance_ms + BATCH_HORIZON_MS) / emission_ms) + 1
    return max(1, min(wanted, by_time, MAX_BATCH))


def slot_times(
    taken_at_ms: float, start_ms: float, n: int, emission_ms: float, tolerance_ms: float
) -> list[float]:
    """When each of `n` slots conforms (GCRA), the schedule having been at `start_ms` when
    they were taken at `taken_at_ms` (none earlier than that: the first goes at once)."""
    return [max(taken_at_ms, start_ms + i * emission_ms - tolerance_ms) for i in range(n)]
