"""`SqlRateLimiter`: the shared policy with each key's budget in one `rate_budget` row.

Taking a request is a single conditional UPDATE, the same SQL on SQLite (3.35+) and
PostgreSQL, so any number of processes on any number of machines pace one location together:

    UPDATE rate_budget
       SET tat_ms = CASE WHEN tat_ms > :now THEN tat_ms ELSE :now END + :emission, ...
     WHERE key = :key AND paused_until_ms <= :now AND tat_ms - :tolerance <= :now
    RETURNING max, interval_ms

No row back means "not yet": we read the row, sleep until it would conform, and try again.
Learning from a response (`observe`) is a read-modify-write of the row inside a transaction
that holds it (`BEGIN IMMEDIATE` on SQLite, `SELECT ... FOR UPDATE` on PostgreSQL), so the
policy code is the very same functions the in-memory limiter runs.

Times are wall-clock epoch milliseconds (processes on different machines share no monotonic
clock), stored as integers; the policy rounds the pace so integer ms never run it faster.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.ghl._ratelimit import _policy as p
from ghlsync.ghl._ratelimit._memory import to_budget
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
    t.c.updated_ms,
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
        self._rng = rng or random.Random()
        self._limits: dict[str, tuple[int, int]] = {}  # key -> (max, interval_ms) last seen
        self._locks: dict[str, asyncio.Lock] = {}

    def _now_ms(self) -> int:
        return math.floor(self._clock.now() * 1000.0)

    async def acquire(self, key: str) -> None:
        """Wait until one more request for `key` fits the shared budget, then take it."""
        # One poller per key per process: the rest queue here instead of all hitting the row
        # at the same instant every time a slot opens.
        async with self._locks.setdefault(key, asyncio.Lock()):
            slot: int | None = None
            while (taken := await asyncio.to_thread(self._try_take, key, slot)) is not True:
                slot, wait = taken
                await self._clock.sleep(wait / 1000.0)

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """Adapt the shared row to the X-RateLimit-* headers; on 429 pause this key only."""
        await asyncio.to_thread(self._observe, key, status, dict(headers.items()))

    async def has_budget(self, key: str) -> bool:
        """True when `key` is not paused and its daily budget is above the reserve."""
        state = await asyncio.to_thread(self._read, key)
        return p.has_budget(self.policy, state, self._now_ms())

    async def budget(self, key: str) -> Budget:
        """What the shared row says about `key` (paused_until in epoch seconds, 0 if not)."""
        state = await asyncio.to_thread(self._read, key)
        paused = state.paused_until_ms / 1000.0 if state.paused_until_ms > self._now_ms() else 0.0
        return to_budget(state, paused)

    def _try_take(self, key: str, slot: int | None) -> Literal[True] | tuple[int, float]:
        """True when taken; else (the slot to come back at, ms to wait)."""
        self._ensure_row(key)
        now = self._now_ms()
        max_, interval = self._limits.get(key, self._defaults[:2])
        pacing = self.policy.pacing(max_, interval)
        # A late waker keeps its slot (see `_policy.try_take`); if that fails, plain `now`.
        for at in dict.fromkeys((math.floor(p.effective_now(pacing, now, slot)), now)):
            with self._engine.begin() as conn:
                taken = conn.execute(_TAKE, _take_params(key, at, pacing)).first()
                if taken is None:
                    state = _to_state(conn.execute(_select(key)).one())
            if taken is not None:
                self._limits[key] = (taken.max, taken.interval_ms)
                return True
            self._limits[key] = (state.max, state.interval_ms)
            wait = p.wait_ms(self.policy, state, now)
            if wait > 0:
                return math.ceil(now + wait), wait
        # Conforming by the row yet refused: the limits changed under us; look again soon.
        return now + 1, 1.0

    def _observe(self, key: str, status: int, headers: dict[str, str]) -> None:
        self._ensure_row(key)
        with begin_immediate(self._engine) as conn:
            state = _to_state(conn.execute(_select(key).with_for_update()).one())
            p.observe(
                self.policy, state, self._now_ms(), status, headers, self._rng, self._clock.now()
            )
            conn.execute(_write_statement(state, self._now_ms()))
        self._limits[key] = (state.max, state.interval_ms)

    def _read(self, key: str) -> p.LimitState:
        with self._engine.connect() as conn:
            row = conn.execute(_select(key)).first()
        if row is None:
            max_, interval, daily = self._defaults
            return p.LimitState(key=key, max=max_, interval_ms=interval, daily_limit=daily)
        return _to_state(row)

    def _ensure_row(self, key: str) -> None:
        if key in self._limits:
            return
        max_, interval, daily = self._defaults
        values = {"key": key, "max": max_, "interval_ms": interval, "daily_limit": daily}
        with self._engine.begin() as conn:
            conn.execute(_insert_ignore(conn.dialect.name, values))
            row = conn.execute(_select(key)).one()
        self._limits[key] = (row.max, row.interval_ms)


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
            daily_remaining=t.c.daily_remaining - 1,  # NULL stays NULL
            updated_ms=now,
        )
        .returning(t.c.max, t.c.interval_ms)
    )


_TAKE = _build_take()


def _take_params(key: str, now: int, pacing: p.Pacing) -> dict[str, Any]:
    return {
        "k": key,
        "now": now,
        "tolerance": int(pacing.tolerance_ms),
        "emission": int(pacing.emission_ms),
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
        touched_ms=float(row.updated_ms),  # every take and response writes it
    )
