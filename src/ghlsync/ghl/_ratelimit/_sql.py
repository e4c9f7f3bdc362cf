"""`SqlRateLimiter`: the shared policy with each key's window kept as `rate_slots` rows.

A key has one `rate_slots` row per request its window allows (`X-RateLimit-Max`), and one
`rate_budget` row for what the headers said (limits, 429 pause, daily count). Taking requests
is a single statement, the same on SQLite (3.35+) and PostgreSQL:

    UPDATE rate_slots SET free_at_ms = :now + :hold, in_flight = true, taken_ms = :now
     WHERE key = :key AND slot IN (
           SELECT s.slot FROM rate_slots s JOIN rate_budget b ON b.key = s.key
            WHERE s.key = :key AND s.free_at_ms <= :now AND b.paused_until_ms <= :now
              AND s.slot < (CASE WHEN b.remaining IS NULL THEN 1 ELSE b.max END)
            ORDER BY s.slot LIMIT :n FOR UPDATE OF s SKIP LOCKED)   -- PostgreSQL only
    RETURNING slot

`:n` is how many of this process's callers are waiting for the key right now (at most
`batch`): slots are taken for callers that exist, never stocked ahead, and a slot a caller
gave up on is handed back at once, so no process can hold what another could use. The answer
frees its slot (`free_at_ms = answer + interval`, one UPDATE); the `rate_budget` row is written
only when the headers change something that paces anyone (new limits, a 429, the daily count
moving on, strangers in the window). Times are wall-clock epoch milliseconds (processes on
different machines share no monotonic clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.ghl._ratelimit import _policy as p
from ghlsync.ghl._ratelimit._memory import to_budget
from ghlsync.ghl._seams import Budget
from ghlsync.store import begin_immediate
from ghlsync.store._tables import rate_budget as t
from ghlsync.store._tables import rate_slots as s

_STATE_COLUMNS = (
    t.c.key,
    t.c.max,
    t.c.interval_ms,
    t.c.daily_limit,
    t.c.paused_until_ms,
    t.c.remaining,
    t.c.daily_remaining,
    t.c.throttled,
    t.c.consecutive_429,
    t.c.updated_ms,
)
BATCH = 8  # the most slots one statement takes for one process's waiting callers
FLUSH_S = 0.005  # freed slots are written at most this late, together
POLL_S = 0.05  # how often to look again while a key's first answer (its limit) is awaited
POLL_LEARNT_S = 0.25  # ... and while every usable slot is in flight (only hand-backs free one)
DAILY_WRITE_MS = 2_000  # the daily count is written back at most this often (or on a change
DAILY_WRITE_STEP = 100  # of this many), unless it nears the reserve


class SqlRateLimiter:
    """Paces each key through the database, so several processes share one window."""

    def __init__(
        self,
        engine: sa.Engine,
        clock: Clock = SYSTEM_CLOCK,
        default_max: int = p.DEFAULT_MAX,
        default_interval_ms: int = p.DEFAULT_INTERVAL_MS,
        daily_limit: int = p.DEFAULT_DAILY_LIMIT,
        daily_reserve: int = 2_000,
        *,
        max_pause_s: float = 300.0,
        daily_pacing: bool = True,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._defaults = (default_max, default_interval_ms, daily_limit)
        self.policy = p.Policy(
            daily_reserve=daily_reserve,
            max_pause_ms=max_pause_s * 1000.0,
            daily_pacing=daily_pacing,
        )
        self._pg = engine.dialect.name == "postgresql"
        self._margin = math.ceil(self.policy.margin_ms) + 1  # + 1: `now` is floored to a ms
        self._take = _build_take(self._pg)
        self._known: dict[str, tuple[int, int, bool]] = {}  # key -> (max, interval, learnt)
        self._written: dict[str, tuple[int | None, int]] = {}  # key -> (daily, when) written
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._spare: dict[str, deque[int]] = {}
        self._in_flight: dict[str, deque[tuple[int, int]]] = {}  # key -> (slot, sent ms)
        self._answered: dict[str, asyncio.Event] = {}
        self._pending: list[dict[str, Any]] = []  # freed slots not yet written
        self._flusher: asyncio.Future[None] | None = None

    def _now_ms(self) -> int:
        return math.floor(self._clock.now() * 1000.0)

    async def acquire(self, key: str) -> None:
        """Wait until a slot of `key`'s shared window is free, then take it."""
        self._waiting[key] = self._waiting.get(key, 0) + 1
        spare = self._spare.setdefault(key, deque())
        try:
            async with self._locks.setdefault(key, asyncio.Lock()):
                while not spare:
                    want = min(BATCH, self._waiting[key])
                    pending, self._pending = self._pending, []
                    got = await asyncio.to_thread(self._try_take, key, want, pending)
                    if isinstance(got, list):
                        spare.extend(got)
                    else:
                        await self._wait(key, got)
                flying = self._in_flight.setdefault(key, deque())
                flying.append((spare.popleft(), self._now_ms()))
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key] and spare:  # taken for callers that gave up: give back
                back = list(spare)
                spare.clear()
                await asyncio.to_thread(self._hand_back, key, back)

    async def _wait(self, key: str, wait_ms: float) -> None:
        if not math.isinf(wait_ms):
            await self._clock.sleep(wait_ms / 1000.0)
            return
        # Every usable slot is in flight. An answer frees its slot only an interval after it
        # comes, so nothing frees sooner but a first answer teaching the limit (more slots),
        # a 429 or a hand-back: those wake us (this process) or are polled (others).
        answered = self._answered.setdefault(key, asyncio.Event())
        answered.clear()
        learnt = self._known.get(key, (0, 0, False))[2]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered.wait(), POLL_LEARNT_S if learnt else POLL_S)

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        """Free the answered request's slot, adapt the shared rows to the X-RateLimit-*
        headers; on 429 pause this key only. Status 0: the send failed, no answer."""
        flying = self._in_flight.get(key)
        slot, sent = flying.popleft() if flying else (None, None)
        now = self._now_ms()
        seen = p.RateHeaders.parse(headers, self._clock.now())
        if key in self._known and not self._needs_budget_write(key, status, seen, now):
            if slot is not None:  # the usual answer: only its slot to free, written in a batch
                self._pending.append({"k": key, "s": slot, "at": now + self._reuse(key)})
                self._schedule_flush()
            return
        await asyncio.to_thread(self._observe, key, status, seen, slot, sent)
        event = self._answered.get(key)
        if event is not None:
            event.set()

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Write the freed slots of the last few milliseconds in one statement. Late is safe:
        until written, a slot only looks busy for a little longer."""
        await asyncio.sleep(FLUSH_S)
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.to_thread(self._flush, pending)

    async def drain(self) -> None:
        """Write every freed slot still waiting for its batch: call before the engine is
        disposed, so no write is left running on a connection nobody closes."""
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.to_thread(self._flush, pending)

    def _flush(self, pending: list[dict[str, Any]]) -> None:
        with self._engine.begin() as conn:
            conn.execute(_FREE, pending)

    async def has_budget(self, key: str) -> bool:
        """True when `key` is not paused, above its daily reserve and within the day's pace."""
        state, busy = await asyncio.to_thread(self._read, key)
        return p.has_budget(self.policy, state, self._now_ms(), self._clock.now(), busy)

    async def budget(self, key: str) -> Budget:
        """What the shared rows say about `key` (paused_until in epoch seconds, 0 if not)."""
        state, _ = await asyncio.to_thread(self._read, key)
        paused = state.paused_until_ms / 1000.0 if state.paused_until_ms > self._now_ms() else 0.0
        return to_budget(state, paused, p.daily_pace(self.policy, state, self._clock.now()))

    # -- blocking parts, run in a thread ------------------------------------------------------

    def _try_take(self, key: str, want: int, pending: list[dict[str, Any]]) -> list[int] | float:
        """The slots taken (at least one), or ms to wait (inf: all usable ones in flight);
        freed slots not yet written (`pending`) are written first, in the same transaction."""
        self._ensure_rows(key)
        now = self._now_ms()
        params = {"k": key, "now": now, "hold": now + int(self.policy.hold_ms), "n": want}
        with self._engine.begin() as conn:
            if pending:
                conn.execute(_FREE, pending)
            taken = [row.slot for row in conn.execute(self._take, params)]
            if taken:
                return taken
            row = conn.execute(_WAIT, {"k": key, "now": now}).one()
        if row.paused_until_ms > now:
            return float(row.paused_until_ms - now)
        if row.soonest is not None:
            return float(max(1, row.soonest - now))
        return math.inf

    def _hand_back(self, key: str, slots: list[int]) -> None:
        """Slots taken but never used: free again now (nothing was sent on them)."""
        now = self._now_ms()
        with self._engine.begin() as conn:
            conn.execute(_FREE, [{"k": key, "s": slot, "at": now} for slot in slots])

    def _observe(
        self,
        key: str,
        status: int,
        seen: p.RateHeaders,
        slot: int | None,
        sent: int | None,
    ) -> None:
        self._ensure_rows(key)
        now = self._now_ms()
        with begin_immediate(self._engine) as conn:
            state = _to_state(conn.execute(_select(key).with_for_update()).one())
            oldest = conn.execute(_OLDEST, {"k": key, "now": now}).scalar()
            p.adopt(state, seen)
            if slot is not None:
                at = math.ceil(now + p.reuse_ms(state)) + self._margin
                conn.execute(_FREE, {"k": key, "s": slot, "at": at})
            state.touched_ms = now
            first = not self._known.get(key, (0, 0, False))[2]
            self._learn(conn, key, state)
            if status == 429:
                p.pause_for_429(self.policy, state, now, oldest, seen.retry_after_ms)
            else:
                if 200 <= status < 300:
                    state.consecutive_429 = 0
                if seen.remaining is not None and sent is not None:
                    self._hold_foreign(conn, key, state, seen.remaining, now, sent, first)
                p.pause_if_daily_spent(self.policy, state, now)
            conn.execute(_write_statement(state, now))
        self._written[key] = (state.daily_remaining, now)

    def _needs_budget_write(self, key: str, status: int, seen: p.RateHeaders, now: int) -> bool:
        """Whether this answer changes anything the shared budget row must say."""
        known = self._known.get(key)
        if status not in range(200, 300) or known is None or not known[2]:
            return True
        max_, interval, _ = known
        if (seen.max is not None and seen.max != max_) or (
            seen.interval_ms is not None and seen.interval_ms != interval
        ):
            return True
        if seen.remaining is not None and seen.remaining <= max(1, max_ // 10):
            return True  # a nearly full window: see whether strangers share it
        daily, when = self._written.get(key, (None, 0))
        if seen.daily_remaining is None:
            return False
        if daily is None or seen.daily_remaining <= self.policy.daily_reserve + DAILY_WRITE_STEP:
            return True
        return abs(daily - seen.daily_remaining) >= DAILY_WRITE_STEP or now - when >= (
            DAILY_WRITE_MS
        )

    def _reuse(self, key: str) -> int:
        """Milliseconds from an answer until its slot is free again (with the margin)."""
        max_, interval, _ = self._known.get(key, (*self._defaults[:2], False))
        state = p.LimitState(key=key, max=max_, interval_ms=interval)
        return math.ceil(p.reuse_ms(state)) + self._margin

    def _learn(self, conn: sa.Connection, key: str, state: p.LimitState) -> None:
        """Remember the limits; make sure the key has a slot row per request its window allows."""
        known = self._known.get(key)
        if known is None or not known[2] or known[0] < state.max:
            _insert_slots(conn, key, state.max)
        self._known[key] = (state.max, state.interval_ms, state.learned)

    def _hold_foreign(
        self,
        conn: sa.Connection,
        key: str,
        state: p.LimitState,
        remaining: int,
        now: int,
        sent: int,
        first: bool,
    ) -> None:
        """Hold free slots for requests GHL counts that our slots cannot explain (checked on
        a key's first answer and whenever the window is nearly full; `p.ours_since`)."""
        if (remaining > max(1, state.max // 10) and not first) or state.max > p.MAX_SLOTS:
            return
        ours = conn.execute(_OURS, {"k": key, "sent": sent}).scalar() or 0
        foreign = p.foreign_requests(state, remaining, int(ours))
        if foreign:
            at = now + state.interval_ms
            conn.execute(_hold_statement(self._pg), {"k": key, "now": now, "n": foreign, "at": at})

    def _read(self, key: str) -> tuple[p.LimitState, int]:
        now = self._now_ms()
        with self._engine.connect() as conn:
            row = conn.execute(_select(key)).first()
            if row is None:
                max_, interval, daily = self._defaults
                return p.LimitState(key=key, max=max_, interval_ms=interval, daily_limit=daily), 0
            state = _to_state(row)
            busy, touched = conn.execute(_READ_SLOTS, {"k": key, "now": now}).one()
        state.touched_ms = max(state.touched_ms, float(touched or 0))
        return state, int(busy or 0)

    def _ensure_rows(self, key: str) -> None:
        if key in self._known:
            return
        max_, interval, daily = self._defaults
        values = {"key": key, "max": max_, "interval_ms": interval, "daily_limit": daily}
        with self._engine.begin() as conn:
            conn.execute(_insert_ignore(conn.dialect.name, t, [values]))
            row = conn.execute(_select(key)).one()
            _insert_slots(conn, key, row.max if row.remaining is not None else 1)
        self._known[key] = (row.max, row.interval_ms, row.remaining is not None)


def _cap() -> sa.ColumnElement[Any]:
    """The slots a key may use (`Policy.cap`): one until its limit is learnt."""
    return sa.case(
        (t.c.remaining.is_(None), 1), (t.c.max > p.MAX_SLOTS, p.MAX_SLOTS), else_=t.c.max
    )


def _build_take(pg: bool) -> sa.Update:
    # Built once with bind parameters: rebuilding per call costs more than running it.
    now = sa.bindparam("now", type_=sa.BigInteger)
    key = sa.bindparam("k", type_=sa.String)
    inner = s.alias("free")
    cap = _cap()
    free = (
        sa.select(inner.c.slot)
        .join(t, t.c.key == inner.c.key)
        .where(
            inner.c.key == key,
            inner.c.free_at_ms <= now,
            t.c.paused_until_ms <= now,
            inner.c.slot < cap,
        )
        .order_by(inner.c.slot)
        .limit(sa.bindparam("n", type_=sa.Integer))
    )
    if pg:
        free = free.with_for_update(of=inner, skip_locked=True)
    return (
        s.update()
        .where(s.c.key == key, s.c.slot.in_(free.scalar_subquery()))
        .values(free_at_ms=sa.bindparam("hold", type_=sa.BigInteger), in_flight=True, taken_ms=now)
        .returning(s.c.slot)
    )


def _build_wait() -> sa.Select[Any]:
    now = sa.bindparam("now", type_=sa.BigInteger)
    key = sa.bindparam("k", type_=sa.String)
    cap = _cap()
    soonest = (
        sa.select(sa.func.min(s.c.free_at_ms))
        .where(s.c.key == key, s.c.slot < cap, s.c.free_at_ms > now, s.c.in_flight.is_(False))
        .scalar_subquery()
    )
    return sa.select(t.c.paused_until_ms, soonest.label("soonest")).where(t.c.key == key)


_WAIT = _build_wait()
_FREE = (
    s.update()
    .where(s.c.key == sa.bindparam("k"), s.c.slot == sa.bindparam("s"))
    .values(free_at_ms=sa.bindparam("at", type_=sa.BigInteger), in_flight=False)
)
_OLDEST = sa.select(sa.func.min(s.c.free_at_ms)).where(
    s.c.key == sa.bindparam("k"),
    s.c.free_at_ms > sa.bindparam("now", type_=sa.BigInteger),
    s.c.in_flight.is_(False),
)
_SENT = sa.bindparam("sent", type_=sa.BigInteger)
_OURS = sa.select(
    sa.func.count().filter(s.c.free_at_ms > _SENT) + sa.func.count().filter(s.c.taken_ms > _SENT)
).where(s.c.key == sa.bindparam("k"))
_READ_SLOTS = sa.select(
    sa.func.count().filter(s.c.free_at_ms > sa.bindparam("now", type_=sa.BigInteger)),
    sa.func.max(s.c.taken_ms),
).where(s.c.key == sa.bindparam("k"))


def _hold_statement(pg: bool) -> sa.Update:
    inner = s.alias("free")
    free = (
        sa.select(inner.c.slot)
        .where(inner.c.key == sa.bindparam("k"), inner.c.free_at_ms <= sa.bindparam("now"))
        .order_by(inner.c.slot)
        .limit(sa.bindparam("n", type_=sa.Integer))
    )
    if pg:
        free = free.with_for_update(of=inner, skip_locked=True)
    return (
        s.update()
        .where(s.c.key == sa.bindparam("k"), s.c.slot.in_(free.scalar_subquery()))
        .values(free_at_ms=sa.bindparam("at", type_=sa.BigInteger))
    )


def _insert_slots(conn: sa.Connection, key: str, max_requests: int) -> None:
    rows = [{"key": key, "slot": i} for i in range(p.slot_count(max_requests))]
    conn.execute(_insert_ignore(conn.dialect.name, s, rows))


def _write_statement(state: p.LimitState, now: int) -> sa.Update:
    return (
        t.update()
        .where(t.c.key == state.key)
        .values(
            max=state.max,
            interval_ms=state.interval_ms,
            daily_limit=state.daily_limit,
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


def _insert_ignore(dialect: str, table: sa.Table, rows: list[dict[str, Any]]) -> sa.Executable:
    if dialect == "postgresql":
        return postgresql.insert(table).values(rows).on_conflict_do_nothing()
    return sqlite.insert(table).values(rows).on_conflict_do_nothing()


def _to_state(row: sa.Row[Any]) -> p.LimitState:
    return p.LimitState(
        key=row.key,
        max=row.max,
        interval_ms=row.interval_ms,
        daily_limit=row.daily_limit,
        paused_until_ms=float(row.paused_until_ms),
        remaining=row.remaining,
        daily_remaining=row.daily_remaining,
        throttled=row.throttled,
        consecutive_429=row.consecutive_429,
        touched_ms=float(row.updated_ms),
    )
