"""`SqlRateLimiter`: the shared policy with each key's budget in one `rate_budget` row.

Taking a request is a single conditional UPDATE, the same SQL on SQLite (3.35+) and
PostgreSQL, so any number of processes on any number of machines pace one location together:

    UPDATE rate_budget
       SET tat_ms = CASE WHEN tat_ms > :now THEN tat_ms ELSE :now END + :emission, ...
     WHERE key = :key AND paused_until_ms <= :now AND tat_ms - :tolerance <= :now
    RETURNING max, interval_ms

No row back means "not yet": we read the row, sleep until it would conform, and try again.
When the pace is fast, one UPDATE takes a batch of consecutive slots for the callers queued
in this process (`_slots`: each keeps its own time in the schedule, so the bound holds).
Learning from a response (`observe`) is a read-modify-write of the row inside a transaction
that holds it (`BEGIN IMMEDIATE` on SQLite, `SELECT ... FOR UPDATE` on PostgreSQL), so the
policy code is the very same functions the in-memory limiter runs. A response whose headers
agree with what this process last saw of the row (`Known`) is not written back at all.

Times are wall-clock epoch milliseconds (processes on different machines share no monotonic
clock), stored as integers; the policy rounds the pace so integer ms never run it faster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.ghl._ratelimit import _policy as p
from ghlsync.ghl._ratelimit._memory import to_budget
from ghlsync.ghl._ratelimit._slots import MAX_BATCH, KeySlots, Known, batch_size, slot_times
from ghlsync.ghl._seams import Budget
from ghlsync.store import begin_immediate
from ghlsync.store._tables import rate_budget as t

_STATE_COLUMNS = (
    t.c.key,
    t.c.max,
    t.c.interval_ms,
    t.c.daily_limit,
    t.c.tat_ms,
    t.c.paused_until_ms,
    t.c.remaining,
    t.c.daily_remaining,
    t.c.throttled,
    t.c.consecutive_429,
)


class SqlRateLimiter:
    """Paces each key through the database, so several processes share one budget."""

    def __init__(
        self,
        engine: sa.Engine,
        clock: Clock = SYSTEM_CLOCK,
        default_max: int = p.DEFAULT_MAX,
        default_interval_ms: int = p.DEFAULT_INTERVAL_MS,
        daily_limit: int = p.DEFAULT_DAILY_LIMIT,
        daily_reserve: int = 2_000,
        safety: float = 0.98,
        *,
        burst: float = 0.5,
        max_pause_s: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._defaults = (default_max, default_interval_ms, daily_limit)
        self.policy = p.Policy(
            safety=safety,
            burst=burst,
            daily_reserve=daily_reserve,
            max_pause_ms=max_pause_s * 1000.0,
            resolution_ms=1.0,
        )
        # The same pace unrounded: a batch of slots is spaced by it and rounded up as a whole.
        self._exact = dataclasses.replace(self.policy, resolution_ms=0.0)
        self._rng = rng or random.Random()
        self._known: dict[str, Known] = {}  # written from worker threads: whole-value swaps
        self._slots: dict[str, KeySlots] = {}

    def _now_ms(self) -> int:
        return math.floor(self._clock.now() * 1000.0)

    async def acquire(self, key: str) -> None:
        """Wait until one more request for `key` fits the shared budget, then take it."""
        slots = self._slots.setdefault(key, KeySlots())
        slots.waiting += 1
        try:
            while (at := slots.pop(self._now_ms())) is None:
                # One refiller per key per process: the rest queue here and take from its batch.
                async with slots.lock:
                    if not slots.times:
                        await self._refill(key, slots)
        finally:
            slots.waiting -= 1
        if (wait := at - self._now_ms()) > 0:
            await self._clock.sleep(wait / 1000.0)

    async def _refill(self, key: str, slots: KeySlots) -> None:
        slot: int | None = None
        while True:
            taken = await asyncio.to_thread(self._try_take, key, slot, slots.waiting)
            if isinstance(taken, _Batch):
                slots.fill(taken.times, taken.catch_up_ms)
                return
            slot, wait = taken
            await self._clock.sleep(wait / 1000.0)

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """Adapt the shared row to the X-RateLimit-* headers; on 429 pause this key only.

        A response that tells us nothing new (same limits, no 429, nothing left unexplained,
        the daily budget far from the reserve) writes nothing, except to refresh the row's
        reported `remaining` at most once per `_REFRESH_MS`.
        """
        known = self._known.get(key)
        if known is not None and self._agrees(known, status, headers):
            return
        moved = await asyncio.to_thread(self._observe, key, status, dict(headers.items()))
        if moved and (slots := self._slots.get(key)) is not None:
            slots.drop()

    async def has_budget(self, key: str) -> bool:
        """True when `key` is not paused and its daily budget is above the reserve."""
        state = await asyncio.to_thread(self._read, key)
        return p.has_budget(self.policy, state, self._now_ms())

    async def budget(self, key: str) -> Budget:
        """What the shared row says about `key` (paused_until in epoch seconds, 0 if not)."""
        state = await asyncio.to_thread(self._read, key)
        paused = state.paused_until_ms / 1000.0 if state.paused_until_ms > self._now_ms() else 0.0
        return to_budget(state, paused)

    def _agrees(self, known: Known, status: int, headers: Mapping[str, str]) -> bool:
        """True when writing this response back would change nothing that paces anyone."""
        if status == 429 or (200 <= status < 300 and known.consecutive_429):
            return False
        if self._now_ms() - known.written_ms >= _REFRESH_MS:
            return False
        seen = p.RateHeaders.parse(headers, self._clock.now())
        if not (
            _same(seen.max, known.max)
            and _same(seen.interval_ms, known.interval_ms)
            and _same(seen.daily_limit, known.daily_limit)
        ):
            return False
        if seen.daily_remaining is not None and (
            known.daily_remaining is None
            or seen.daily_remaining <= self.policy.daily_reserve + _DAILY_MARGIN
        ):
            return False
        pacing = self.policy.pacing(known.max, known.interval_ms)
        bound = pacing.window_bound(known.interval_ms)
        return seen.remaining is None or known.max - bound - seen.remaining <= 0

    def _try_take(self, key: str, slot: int | None, wanted: int) -> _Batch | tuple[int, float]:
        """A batch of slots when taken; else (the slot to come back at, ms to wait)."""
        known = self._ensure_row(key)
        now = self._now_ms()
        pace = self._pace(known)
        n = batch_size(wanted, pace.emission_ms, pace.tolerance_ms)
        # A late waker keeps its slot (see `_policy.try_take`); if that fails, plain `now`.
        for at in dict.fromkeys((math.floor(p.effective_now(pace, now, slot)), now)):
            with self._engine.begin() as conn:
                row = conn.execute(_TAKE, _take_params(key, at, pace, n)).first()
                if row is None:
                    state = _to_state(conn.execute(_select(key)).one())
            if row is not None:
                return self._taken(key, known, row, at, (n, pace))
            self._known[key] = _known(state, known.written_ms)
            wait = max(0.0, state.tat_ms - pace.tolerance_ms - now, state.paused_until_ms - now)
            if wait > 0:
                return math.ceil(now + wait), wait
        # Conforming by the row yet refused: the limits changed under us; look again soon.
        return now + 1, 1.0

    def _pace(self, known: Known) -> p.Pacing:
        """The key's pacing in whole milliseconds, unrounded when it is fast enough to batch.

        Slow keys (GHL's usual 100 per 10 s) keep the policy's integer pace, one slot at a
        time. Fast keys space their slots at the exact pace, with the tolerance and catch-up
        derived from it (a window bound holds only for one consistent pace), and round each
        batch's total up instead of each slot: integer ms would cap a key at 1,000 per second.
        """
        exact = self._exact.pacing(known.max, known.interval_ms)
        if batch_size(MAX_BATCH, exact.emission_ms, exact.tolerance_ms) > 1:
            return p.Pacing(exact.emission_ms, math.floor(exact.tolerance_ms), exact.catch_up_ms)
        return self.policy.pacing(known.max, known.interval_ms)

    def _taken(self, key: str, known: Known, row: sa.Row[Any], at: int, how: _Shape) -> _Batch:
        n, pace = how
        self._known[key] = _known(row, known.written_ms)
        start = row.tat_ms - _emission(pace, n)
        times = slot_times(at, start, n, pace.emission_ms, pace.tolerance_ms)
        if (row.max, row.interval_ms) != (known.max, known.interval_ms):
            times = times[:1]  # paced at limits another process has since replaced
        return _Batch(times, pace.catch_up_ms)

    def _observe(self, key: str, status: int, headers: dict[str, str]) -> bool:
        """Write what the response taught; True when the pace or the schedule moved."""
        self._ensure_row(key)
        with begin_immediate(self._engine) as conn:
            state = _to_state(conn.execute(_select(key).with_for_update()).one())
            before = (state.max, state.interval_ms, state.tat_ms, state.paused_until_ms)
            now = self._now_ms()
            p.observe(self.policy, state, now, status, headers, self._rng, self._clock.now())
            conn.execute(_write_statement(state, now))
        self._known[key] = _known(state, now)
        return before != (state.max, state.interval_ms, state.tat_ms, state.paused_until_ms)

    def _read(self, key: str) -> p.LimitState:
        with self._engine.connect() as conn:
            row = conn.execute(_select(key)).first()
        if row is None:
            max_, interval, daily = self._defaults
            return p.LimitState(key=key, max=max_, interval_ms=interval, daily_limit=daily)
        return _to_state(row)

    def _ensure_row(self, key: str) -> Known:
        if (known := self._known.get(key)) is not None:
            return known
        max_, interval, daily = self._defaults
        values = {"key": key, "max": max_, "interval_ms": interval, "daily_limit": daily}
        with self._engine.begin() as conn:
            conn.execute(_insert_ignore(conn.dialect.name, values))
            row = conn.execute(_select(key)).one()
        known = self._known[key] = _known(row, 0)
        return known


# How often `observe` writes back even when nothing changed: how stale the row's reported
# `remaining` (and the daily estimate other processes read) may get.
_REFRESH_MS = 1_000
# `observe` always writes once the daily budget is this close to the reserve.
_DAILY_MARGIN = 1_000

_Shape = tuple[int, p.Pacing]  # how many slots, at which pace


@dataclass(frozen=True, slots=True)
class _Batch:
    times: list[float]
    catch_up_ms: float


def _same(seen: int | None, known: int) -> bool:
    # `adopt` ignores absent and non-positive values, so they agree with anything.
    return seen is None or seen <= 0 or seen == known


def _known(row: sa.Row[Any] | p.LimitState, written_ms: int) -> Known:
    return Known(
        max=row.max,
        interval_ms=row.interval_ms,
        daily_limit=row.daily_limit,
        daily_remaining=row.daily_remaining,
        consecutive_429=row.consecutive_429,
        written_ms=written_ms,
    )


def _build_take() -> sa.Update:
    # Built once with bind parameters: rebuilding per call costs more than running it.
    now = sa.bindparam("now", type_=sa.BigInteger)
    later = sa.case((t.c.tat_ms > now, t.c.tat_ms), else_=now)
    return (
        t.update()
        .where(
            t.c.key == sa.bindparam("k", type_=sa.String),
            t.c.paused_until_ms <= now,
            t.c.tat_ms - sa.bindparam("tolerance", type_=sa.BigInteger) <= now,
        )
        .values(
            tat_ms=later + sa.bindparam("emission", type_=sa.BigInteger),
            daily_remaining=t.c.daily_remaining - sa.bindparam("n", type_=sa.Integer),
            updated_ms=now,
        )  # NULL daily_remaining stays NULL
        .returning(
            t.c.tat_ms,
            t.c.max,
            t.c.interval_ms,
            t.c.daily_limit,
            t.c.daily_remaining,
            t.c.consecutive_429,
        )
    )


_TAKE = _build_take()


def _emission(pace: p.Pacing, n: int) -> int:
    # The schedule moves on by whole ms, rounded up: never faster than the pace.
    return math.ceil(n * pace.emission_ms)


def _take_params(key: str, now: int, pace: p.Pacing, n: int) -> dict[str, Any]:
    return {
        "k": key,
        "now": now,
        "tolerance": int(pace.tolerance_ms),
        "emission": _emission(pace, n),
        "n": n,
    }


def _write_statement(state: p.LimitState, now: int) -> sa.Update:
    return (
        t.update()
        .where(t.c.key == state.key)
        .values(
            max=state.max,
            interval_ms=state.interval_ms,
            daily_limit=state.daily_limit,
            tat_ms=math.ceil(state.tat_ms),
            paused_until_ms=math.ceil(state.paused_until_ms),
            remaining=state.remaining,
            daily_remaining=state.daily_remaining,
            throttled=state.throttled,
            consecutive_429=state.consecutive_429,
            updated_ms=now,
        )
    )


def _select(key: str) -> sa.Select[Any]:
    return sa.select(*_STATE_COLUMNS).where(t.c.key == key)


def _insert_ignore(dialect: str, values: dict[str, Any]) -> sa.Executable:
    if dialect == "postgresql":
        return postgresql.insert(t).values(**values).on_conflict_do_nothing()
    return sqlite.insert(t).values(**values).on_conflict_do_nothing()


def _to_state(row: sa.Row[Any]) -> p.LimitState:
    return p.LimitState(
        key=row.key,
        max=row.max,
        interval_ms=row.interval_ms,
        daily_limit=row.daily_limit,
        tat_ms=float(row.tat_ms),
        paused_until_ms=float(row.paused_until_ms),
        remaining=row.remaining,
        daily_remaining=row.daily_remaining,
        throttled=row.throttled,
        consecutive_429=row.consecutive_429,
    )
