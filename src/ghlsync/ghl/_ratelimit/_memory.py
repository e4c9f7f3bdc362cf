"""`MemoryRateLimiter`: the shared policy with its state in this process (one lock per key)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Mapping

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.ghl._ratelimit import _policy as p
from ghlsync.ghl._seams import Budget


class MemoryRateLimiter:
    """Paces each key (location or company id) within one process; see `_policy` for the math.

    Times are kept on the clock's monotonic scale, so wall-clock jumps cannot burst or stall.
    Waiters for one key queue on that key's lock, in arrival order; other keys never wait.
    """

    def __init__(
        self,
        clock: Clock = SYSTEM_CLOCK,
        default_max: int = p.DEFAULT_MAX,
        default_interval_ms: int = p.DEFAULT_INTERVAL_MS,
        daily_limit: int = p.DEFAULT_DAILY_LIMIT,
        daily_reserve: int = 2_000,
        *,
        max_pause_s: float = 300.0,
        daily_pacing: bool = True,
    ) -> None:
        self._clock = clock
        self._defaults = (default_max, default_interval_ms, daily_limit)
        self.policy = p.Policy(
            daily_reserve=daily_reserve,
            max_pause_ms=max_pause_s * 1000.0,
            daily_pacing=daily_pacing,
        )
        self._states: dict[str, p.LimitState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._answered: dict[str, asyncio.Event] = {}

    def _state(self, key: str) -> p.LimitState:
        state = self._states.get(key)
        if state is None:
            max_, interval, daily = self._defaults
            state = p.LimitState(key=key, max=max_, interval_ms=interval, daily_limit=daily)
            self._states[key] = state
        return state

    def _now_ms(self) -> float:
        return self._clock.monotonic() * 1000.0

    async def acquire(self, key: str) -> None:
        """Wait until a slot of `key`'s window is free, then take it."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        answered = self._answered.setdefault(key, asyncio.Event())
        async with lock:
            state = self._state(key)
            while (wait := p.try_take(self.policy, state, self._now_ms())) > 0:
                if math.isinf(wait):  # every usable slot is in flight: the next answer frees one
                    answered.clear()
                    await _first(answered.wait(), self._clock.sleep(self.policy.hold_ms / 1000))
                else:
                    await self._clock.sleep(wait / 1000.0)

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """Free the answered request's slot, adapt to the X-RateLimit-* headers; on 429 pause
        this key only. Status 0: the send failed without an answer (the slot is freed)."""
        state = self._state(key)
        p.observe(self.policy, state, self._now_ms(), status, headers, self._clock.now())
        event = self._answered.get(key)
        if event is not None:
            event.set()

    async def has_budget(self, key: str) -> bool:
        """True when `key` is not paused, above its daily reserve and within the day's pace."""
        state = self._state(key)
        now = self._now_ms()
        return p.has_budget(self.policy, state, now, self._clock.now(), p.busy(state, now))

    async def budget(self, key: str) -> Budget:
        """What this limiter knows about `key` (paused_until in epoch seconds, 0 if not)."""
        state = self._state(key)
        ahead_ms = state.paused_until_ms - self._now_ms()
        paused_until = self._clock.now() + ahead_ms / 1000.0 if ahead_ms > 0 else 0.0
        return to_budget(state, paused_until, p.daily_pace(self.policy, state, self._clock.now()))


async def _first(*waits: Awaitable[object]) -> None:
    """Wait for whichever of these awaitables finishes first; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def to_budget(state: p.LimitState, paused_until: float, daily_pace: int | None) -> Budget:
    """The seam's `Budget` for one key's state."""
    return Budget(
        key=state.key,
        max=state.max,
        interval_ms=state.interval_ms,
        remaining=state.remaining,
        daily_limit=state.daily_limit,
        daily_remaining=state.daily_remaining,
        paused_until=paused_until,
        throttled=state.throttled,
        daily_pace=daily_pace,
    )
