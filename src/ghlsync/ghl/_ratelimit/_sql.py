"""`SqlRateLimiter`: the shared policy with each key's window kept as `rate_slots` rows.

A key has one `rate_slots` row per request its window allows (`X-RateLimit-Max`), and one
`rate_budget` row for what the headers said (limits, 429 pause, daily count). Taking requests
is a single statement (SQLite 3.35+):

    UPDATE rate_slots SET free_at_ms = :now + :hold, in_flight = true, taken_ms = :now
     WHERE key = :key AND slot IN (
           SELECT s.slot FROM rate_slots s JOIN rate_budget b ON b.key = s.key
            WHERE s.key = :key AND s.free_at_ms <= :now AND b.paused_until_ms <= :now
              AND s.slot < (CASE WHEN b.remaining IS NULL THEN 1 ELSE b.max END)
            ORDER BY s.slot LIMIT :n)
    RETURNING slot

On PostgreSQL one statement takes for all the keys this process queued together: the same
subquery per key, `FROM unnest(:keys, :ns) AS wants(k, n) JOIN rate_budget b ON b.key =
wants.k AND ... JOIN LATERAL (... WHERE s.key = wants.k ... LIMIT wants.n FOR UPDATE OF s SKIP
LOCKED)`, and the rows it locked are updated
(`RETURNING key, slot`): rows another process is taking are skipped, not waited for.

`:hold` is short: one interval and `Policy.lease_ms` (15 s), not `Policy.hold_ms` (120 s).
While the request is in flight, this process renews it (`_renew_while_in_flight`: a task that
runs only while something is in flight, and writes only for requests taken a second ago or
more, so an answer in time costs nothing more), up to `hold_ms` after the take. A process
that dies stops renewing: its slots are free again an interval and a lease after the last
renewal, where a location's first request (its one slot) used to stall it for two minutes.

`:n` is how many of this process's callers are waiting for the key right now (at most
`batch`): slots are taken for callers that exist, never stocked ahead, and a slot a caller
gave up on is handed back at once, so no process can hold what another could use. The answer
frees its slot (`free_at_ms = answer + interval`); the `rate_budget` row is written only when
the headers change something that paces anyone (new limits, a 429, the daily count moving on,
strangers in the window). Times are wall-clock epoch milliseconds (processes on different
machines share no monotonic clock).

The hot path costs little CPU because it skips SQLAlchemy's execution layer and the executor:
the take, the free and the wait read (when nothing was free) are compiled once to the
driver's SQL (`_HotStatements`). On SQLite they run on the event loop's own connection
(`store._raw.loop_connection`: BEGIN IMMEDIATE, at most 2 ms of waiting for another writer),
where the ledger and the queue of `ghlsync serve` write too, so nobody takes turns at the
file's one write lock; only when another writer holds it longer does the work go to the
limiter's thread. On PostgreSQL they run on one thread per limiter (`store._dbthread.DbThread`)
on a pooled DBAPI connection. Answered slots wait in memory and are written with whatever hot
statement runs next, or `FLUSH_S` after the answer at the latest (late is safe: a slot only
looks busy a little longer; a write that fails puts them back in the queue). The keys queued
together take in one transaction with those frees, each only for the callers it has: on
PostgreSQL (prepared statements, autocommit) in one statement, whose data-modifying CTE
writes the frees (`_build_write`: one round trip, one statement, for a busy worker's answers
and takes alike; a flush queued next to a take joins it); on SQLite a statement per key after
the frees. The rare paths (a budget row write, a key's first rows, `has_budget`/`budget`) stay on
SQLAlchemy in the default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.ghl._ratelimit import _policy as p
from ghlsync.ghl._ratelimit._memory import to_budget
from ghlsync.ghl._seams import Budget
from ghlsync.store import _raw as raw
from ghlsync.store import begin_immediate
from ghlsync.store._dbthread import DbThread
from ghlsync.store._raw import RawStatement
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
# The limiter thread's PostgreSQL session (`DbThread` settings, its connection only): the take
# (`_build_write`) is planned once per connection, not at every run. Left to choose, PostgreSQL
# plans it anew each time (~0.35 ms, twice its run): its arrays' lengths are unknown to the
# generic plan, which costs them at 10 elements and so looks dearer than any custom plan. The
# generic plan costs a tiny `rate_slots` read whole below the primary key for those 10 (frees):
# no sequential scans, so every row is found by its key. No bitmap scans either: costed for 10
# keys of 10 slots, a bitmap of a freed slot's key (its 1,000 slots on a store without
# statistics: a new one, or autovacuum off) looked cheaper than seeking each (key, slot).
# Its commits do not wait for the WAL flush (`synchronous_commit = off`, this session only;
# ~2.5 ms of a 3.7 ms take on a busy server): they are seen by every process at once, and a
# server crash can lose only the last few hundred milliseconds of takes and frees, after which
# a slot looks free early or busy late: at worst one request over the window, a 429, which
# pauses the key until the window it reports reopens. Anything committed synchronously after
# a take (a ledger's `pending` row, a settle) flushes it too: the WAL is written in order.
PG_SETTINGS = {
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "synchronous_commit": "off",
}
RENEW_S = 1.0  # while requests are in flight, how often to renew the holds of the older ones
RENEW_AGE_MS = 1_000  # ... those taken at least this long ago (on the limiter's clock)
_log = logging.getLogger("ghlsync.ghl")
_T = TypeVar("_T")
_FLUSH = ("", 0)  # an item of the takes' bulk that takes nothing: only the frees are written


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
        renew_s: float = RENEW_S,
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
        self._hot = _HotStatements(engine.dialect)
        self._thread = DbThread(engine, settings=PG_SETTINGS)
        self._known: dict[str, tuple[int, int, bool]] = {}  # key -> (max, interval, learnt)
        self._written: dict[str, tuple[int | None, int]] = {}  # key -> (daily, when) written
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._spare: dict[str, deque[int]] = {}
        self._in_flight: dict[str, deque[tuple[int, int]]] = {}  # key -> (slot, sent ms)
        self._answered: dict[str, asyncio.Event] = {}
        # PostgreSQL: keys whose last take got every slot it asked for (`_take_alongside`),
        # the slots asked by their takes in flight, and a future each for the next to return.
        self._open: dict[str, bool] = {}
        self._asked: dict[str, int] = {}
        self._took: dict[str, asyncio.Future[None]] = {}
        # Freed slots not yet written: appended here, taken by the limiter thread (deques are
        # safe for that across threads) and written before whatever statement it runs next.
        self._pending: deque[dict[str, Any]] = deque()
        self._flusher: asyncio.Future[None] | None = None
        self._renew_s = renew_s
        self._lease_ms = math.ceil(self.policy.lease_ms)
        self._renewer: asyncio.Future[None] | None = None

    def _now_ms(self) -> int:
        return math.floor(self._clock.now() * 1000.0)

    async def acquire(self, key: str) -> None:
        """Wait until a slot of `key`'s shared window is free, then take it."""
        self._waiting[key] = self._waiting.get(key, 0) + 1
        spare = self._spare.get(key)
        if spare is None:  # a key's queues and lock are made once, not per call
            spare = self._spare[key] = deque()
            self._in_flight.setdefault(key, deque())
            self._locks.setdefault(key, asyncio.Lock())
        try:
            if self._open.get(key) and not spare:
                await self._take_alongside(key, spare)
            async with self._locks[key]:
                if key not in self._known:
                    await asyncio.to_thread(self._ensure_rows, key)
                if not spare and not self._pg:
                    # On SQLite the take runs on the loop, where no other caller can join
                    # it: one turn of the loop first lets the callers ready now wait with
                    # us, and one take serves them all (PostgreSQL: `_thread.run_bulk`).
                    await asyncio.sleep(0)
                while not spare:
                    want = min(BATCH, self._waiting[key])
                    got = await self._take(key, want)
                    if isinstance(got, list):
                        spare.extend(got)
                        self._open[key] = self._pg and len(got) == want
                    else:
                        self._open[key] = False
                        await self._wait(key, got)
                self._in_flight[key].append((spare.popleft(), self._now_ms()))
                if self._renewer is None:
                    self._renewer = asyncio.ensure_future(self._renew_while_in_flight())
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key] and spare:  # taken for callers that gave up: give back
                back = list(spare)
                spare.clear()
                await self._write_frees(self._handed_back(key, back))

    async def _take_alongside(self, key: str, spare: deque[int]) -> None:
        """PostgreSQL, while `key`'s window had room at its last take: take for the callers
        no take in flight serves, beside those in flight, instead of after them (one take's
        round trip per key at a time capped a busy location at a few hundred requests a
        second). Returns when slots are spare, or once a take comes back short (then the
        callers take turns again, under the key's lock, as when the window is full)."""
        asked = self._asked
        while not spare and self._open.get(key):
            uncovered = self._waiting[key] - asked.get(key, 0)
            if uncovered <= 0:  # a take in flight counts us: wait for the next to return
                await asyncio.wait([self._next_take(key)])
                continue
            want = min(BATCH, uncovered)
            asked[key] = asked.get(key, 0) + want
            try:
                got = await self._take(key, want)
            finally:
                asked[key] -= want
                took = self._took.pop(key, None)
                if took is not None:
                    took.set_result(None)
            if isinstance(got, list):
                spare.extend(got)
            if not isinstance(got, list) or len(got) < want:
                self._open[key] = False

    def _next_take(self, key: str) -> asyncio.Future[None]:
        found = self._took.get(key)
        if found is None:
            found = self._took[key] = asyncio.get_running_loop().create_future()
        return found

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
        if self._pending:
            await self._write_frees()

    async def drain(self) -> None:
        """Write every freed slot still waiting for its batch and stop renewing holds: call
        before the engine is disposed, so no write is left running on a connection nobody
        closes (a request still in flight keeps its slot for `_lease` more, then it frees)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None and not renewer.done():
            renewer.cancel()
            await asyncio.wait([renewer])
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        if self._pending:
            await self._write_frees()

    # -- holds of requests in flight: short, renewed while this process lives ------------------

    def _lease(self, key: str) -> int:
        """How long past a take or a renewal an in-flight slot of `key` stays held: one
        interval (a request counted by GHL just before its sender died leaves the window
        then) and `Policy.lease_ms` (renewals come up to 2 s apart; the rest is room for a
        request still on its way when its sender died). A live process's slot frees early
        only if its renewals stop for all of that but one gap (~13 s): at worst one request
        too many in the window, which GHL may answer with a 429 (paced, retried)."""
        return self._known.get(key, self._defaults)[1] + self._lease_ms

    async def _renew_while_in_flight(self) -> None:
        """Every `renew_s` while this process has requests in flight: extend the holds of
        those taken `RENEW_AGE_MS` ago or more, so they stay held as long as GHL may count
        them; ends when nothing is in flight (the next take starts it again). An answer in
        time, nearly every one, is never renewed: the hot path writes nothing more."""
        try:
            while True:
                await asyncio.sleep(self._renew_s)
                rows, flying = self._due_renewals()
                if not flying:
                    return
                if rows:
                    try:
                        await self._write_renewals(rows)
                    except Exception:  # the database is unreachable: the next tick tries again
                        _log.warning("renewing rate-limit slots in flight failed", exc_info=True)
        finally:
            if self._renewer is asyncio.current_task():
                self._renewer = None

    def _due_renewals(self) -> tuple[list[dict[str, Any]], bool]:
        """The renewals due now (`k`, `s`, `at`), and whether anything is in flight. A hold
        never runs past `Policy.hold_ms` after its take: a request that never ends (it
        always does: the client's timeouts) does not keep its slot for good."""
        now = self._now_ms()
        cutoff = now - RENEW_AGE_MS
        cap = int(self.policy.hold_ms)
        rows: list[dict[str, Any]] = []
        flying = False
        for key, queue in self._in_flight.items():
            if not queue:
                continue
            flying = True
            lease = self._lease(key)
            for slot, sent in queue:
                if cutoff >= sent and sent + cap > now:
                    rows.append({"k": key, "s": slot, "at": min(now + lease, sent + cap)})
        return rows, flying

    async def _write_renewals(self, rows: list[dict[str, Any]]) -> None:
        """Extend the holds of `rows` that are still in flight (never shorten one): on
        SQLite on the loop's connection if the lock is free, else on the limiter's thread."""
        if not self._on_loop(partial(self._hot.renew, rows=rows, immediate=True))[0]:
            await self._thread.run(partial(self._hot.renew, rows=rows))

    async def _take(self, key: str, want: int) -> list[int] | float:
        """The slots taken for `key`'s `want` waiting callers, or ms to wait (inf: all usable
        ones in flight): on SQLite on the loop's own connection while the write lock is free,
        else on the limiter's thread with the other keys queued at the same time."""
        ran, taken = self._on_loop(partial(self._take_all, wants=[(key, want)], immediate=True))
        if ran:
            return taken[0]  # type: ignore[index]
        return await self._thread.run_bulk(self._take_all, (key, want))

    async def _flush_on_thread(self) -> None:
        """Write the freed slots on the limiter's thread. On PostgreSQL as an item of the
        takes' bulk (`_FLUSH`): next to a take queued at the same moment, both are one
        statement."""
        if self._pg:
            await self._thread.run_bulk(self._take_all, _FLUSH)
        else:
            await self._thread.run(self._flush)

    def _on_loop(self, job: Callable[[Any], _T]) -> tuple[bool, _T | None]:
        """`(True, job(conn))` on this event loop's own SQLite connection
        (`store._raw.loop_connection`); `(False, None)` when it cannot run there (PostgreSQL,
        or another writer of this file held the lock longer than the loop's 2 ms busy
        timeout): the caller then hands it to the limiter's thread, which waits for the lock.
        In `ghlsync serve` the ledger and the queue write on that same connection, so the
        limiter no longer takes turns with them at SQLite's lock and at the GIL.

        A job that fails here has done nothing: its transaction is rolled back and the freed
        slots it took from the queue are back in it (`_take_all`, `_flush`), so the thread
        runs it again from the start; an error other than a busy lock comes out of the
        thread as it always did, as an `sqlalchemy.exc` error."""
        conn = raw.loop_connection(self._engine)
        if conn is None:
            return False, None
        try:
            return True, job(conn)
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return False, None

    async def has_budget(self, key: str) -> bool:
        """True when `key` is not paused, above its daily reserve and within the day's pace."""
        state, busy = await asyncio.to_thread(self._read, key)
        return p.has_budget(self.policy, state, self._now_ms(), self._clock.now(), busy)

    async def budget(self, key: str) -> Budget:
        """What the shared rows say about `key` (paused_until in epoch seconds, 0 if not)."""
        state, _ = await asyncio.to_thread(self._read, key)
        paused = state.paused_until_ms / 1000.0 if state.paused_until_ms > self._now_ms() else 0.0
        return to_budget(state, paused, p.daily_pace(self.policy, state, self._clock.now()))

    # -- the hot path: jobs for the limiter thread, on its DBAPI connection ---------------------

    def _take_all(
        self, conn: Any, wants: list[tuple[str, int]], *, immediate: bool = False
    ) -> list[list[int] | float]:
        """`_take` for the keys queued together, with the freed slots not yet written: on
        PostgreSQL one statement (free, then one take for all keys; a `_FLUSH` item takes
        nothing, it only has the frees written), on SQLite one transaction with one take per
        key after the frees.

        If the SQLite transaction fails, the freed slots go back in the queue for the next
        statement to write: nothing of it was kept. On PostgreSQL too when the statement
        failed on a connection that is still there (one statement: it committed nothing); not
        when the connection was lost, because the statement may have committed before the
        error reached us, and writing the free again after the slot was taken anew would free
        a call in flight. A free lost that way only keeps its slot held until its hold runs
        out (`_lease`: fewer calls, never more)."""
        now = self._now_ms()
        frees = self._pop_pending()
        if self._pg:
            hold = now + max((self._lease(key) for key, n in wants if n), default=0)
            return self._write_pg(conn, wants, frees, now, hold)
        try:
            self._hot.begin(conn, immediate=immediate)
            self._hot.free(conn, frees)
            slots = [
                self._hot.take(conn, {"k": key, "now": now, "hold": now + self._lease(key), "n": n})
                or self._wait_ms(conn, key, now)
                for key, n in wants
            ]
            self._hot.commit(conn)
        except BaseException:
            self._pending.extend(frees)
            raise
        return slots

    def _write_pg(
        self,
        conn: Any,
        wants: list[tuple[str, int]],
        frees: list[dict[str, Any]],
        now: int,
        hold: int,
    ) -> list[list[int] | float]:
        """`_take_all` on PostgreSQL: the frees and the takes in one statement.

        The take sees the rows as they were when the statement began, so a slot freed by the
        same statement is not taken by it, even when it is free already (its answer is older
        than its reuse time, which only happens when that time is shorter than `FLUSH_S`, or
        a hand-back): a key that took nothing then asks again at once (0 ms to wait), and
        the next statement sees the slot free."""
        merged: dict[str, int] = {}  # one key twice (`_take_alongside`): one take, shared
        for key, n in wants:
            if n:
                merged[key] = merged.get(key, 0) + n
        takes = list(merged.items())
        if not takes and not frees:
            return [[] for _ in wants]
        params = {"ks": [key for key, _ in takes], "ns": [n for _, n in takes]}
        try:
            taken = self._hot.take_many(conn, frees, {**params, "now": now, "hold": hold})
        except BaseException as exc:
            if not takes or not self._may_have_committed(conn, exc):
                self._pending.extend(frees)
            raise
        due = {free["k"] for free in frees if free["at"] <= now}
        answers: list[list[int] | float] = []
        for key, n in wants:
            share = taken.get(key, [])[:n]
            if share:
                del taken[key][:n]  # the key's next want in this batch gets the next ones
                answers.append(share)
            else:
                answers.append(self._got(conn, key, now, taken, due) if n else [])
        return answers

    def _may_have_committed(self, conn: Any, exc: BaseException) -> bool:
        """Whether a failed statement may have committed all the same: when the connection
        was lost (the answer may be what failed), or the error is not the driver's."""
        dialect = self._engine.dialect
        if isinstance(exc, dialect.loaded_dbapi.Error):
            return bool(dialect.is_disconnect(exc, conn, None))
        return True

    def _got(
        self, conn: Any, key: str, now: int, taken: dict[str, list[int]], due: set[str]
    ) -> list[int] | float:
        """`key`'s slots, or ms to wait: none if this statement freed one of its slots that is
        free already (the next statement may take it), else `_wait_ms`."""
        if taken.get(key):
            return taken[key]
        return 0.0 if key in due else self._wait_ms(conn, key, now)

    def _wait_ms(self, conn: Any, key: str, now: int) -> float:
        """Nothing was free: how long until something may be (inf: all in flight)."""
        paused_until_ms, soonest = self._hot.wait(conn, {"k": key, "now": now})
        if paused_until_ms > now:
            return float(paused_until_ms - now)
        if soonest is not None:
            return float(max(1, soonest - now))
        return math.inf

    def _pop_pending(self) -> list[dict[str, Any]]:
        rows = []
        pop = self._pending.popleft
        try:
            while True:
                rows.append(pop())
        except IndexError:  # empty (another thread may take the last one first)
            return rows

    def _flush(
        self, conn: Any, also: list[dict[str, Any]] | None = None, *, immediate: bool = False
    ) -> None:
        """Write the freed slots (and `also`); if that fails they are back in the queue."""
        frees = self._pop_pending() + (also or [])
        try:
            self._hot.begin(conn, immediate=immediate)
            self._hot.free(conn, frees)
            self._hot.commit(conn)
        except BaseException:
            self._pending.extend(frees)
            raise

    async def _write_frees(self, also: list[dict[str, Any]] | None = None) -> None:
        """Write the freed slots (and `also`) on the loop's SQLite connection if it can,
        else on the limiter's thread."""
        self._pending.extend(also or ())
        if not self._on_loop(partial(self._flush, immediate=True))[0]:
            await self._flush_on_thread()

    def _hand_back(self, key: str, slots: list[int], conn: Any) -> None:
        """Slots taken but never used: free again now (nothing was sent on them)."""
        self._flush(conn, self._handed_back(key, slots))

    def _handed_back(self, key: str, slots: list[int]) -> list[dict[str, Any]]:
        now = self._now_ms()
        return [{"k": key, "s": slot, "at": now} for slot in slots]

    # -- rare paths, through SQLAlchemy in the default executor ----------------------------------

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
        if not 200 <= status < 300 or known is None or not known[2]:
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
        return math.ceil(p.window_share_ms(max_, interval)) + self._margin

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


def _build_take() -> sa.Update:
    """The take for one key (SQLite; PostgreSQL takes for several at once: `_build_write`).
    Built once with bind parameters: rebuilding per call costs more than running it."""
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
    return (
        s.update()
        .where(s.c.key == key, s.c.slot.in_(free.scalar_subquery()))
        .values(free_at_ms=sa.bindparam("hold", type_=sa.BigInteger), in_flight=True, taken_ms=now)
        .returning(s.c.slot)
    )


class _HotStatements:
    """Take, free and wait as driver SQL: prepared on PostgreSQL (whose limiter connection is
    in autocommit: each statement its own transaction; frees and takes are one statement,
    `_build_write`), in one BEGIN ... COMMIT on SQLite (its connections leave transactions
    to us)."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self._dialect = dialect
        self._pg = dialect.name == "postgresql"
        self._take = RawStatement(_build_write() if self._pg else _build_take())
        self._free = RawStatement(_FREE)
        self._wait = RawStatement(_WAIT)
        self._renew = RawStatement(_RENEW)

    def begin(self, conn: Any, *, immediate: bool = False) -> None:
        """SQLite: `immediate` takes the write lock up front, so a busy lock fails here,
        before anything ran (the loop's connection); the thread's waits on its first write."""
        if not self._pg:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def commit(self, conn: Any) -> None:
        if not self._pg:
            conn.execute("COMMIT")

    def take(self, conn: Any, params: Mapping[str, Any]) -> list[int]:
        """The slots `params` took for its key (SQLite)."""
        return [row[0] for row in self._run(conn, self._take, params).fetchall()]

    def wait(self, conn: Any, params: Mapping[str, Any]) -> tuple[int, int | None]:
        paused_until_ms, soonest = self._run(conn, self._wait, params).fetchone()
        return paused_until_ms, soonest

    def take_many(
        self, conn: Any, frees: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, list[int]]:
        """Free `frees` and take for every key of `params` in one statement (PostgreSQL):
        key -> its slots."""
        taken: dict[str, list[int]] = {}
        for key, slot in self._write(conn, frees, params).fetchall():
            taken.setdefault(key, []).append(slot)
        return taken

    def free(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._pg:  # the take statement, taking nothing: one statement for any number
            self._write(conn, rows, {"ks": [], "ns": [], "now": 0, "hold": 0})
            return
        sql = self._free.compiled(self._dialect).sql
        conn.executemany(sql, [self._free.args(self._dialect, row)[1] for row in rows])

    def renew(self, conn: Any, rows: list[dict[str, Any]], *, immediate: bool = False) -> None:
        """Extend in-flight holds (`_RENEW`). On PostgreSQL a statement per row, each its
        own transaction (autocommit): holding one row lock at a time, a renewal never waits
        in a cycle with another process's multi-row take or free."""
        sql = self._renew.compiled(self._dialect).sql
        args = [self._renew.args(self._dialect, row)[1] for row in rows]
        if self._pg:
            for one in args:
                conn.execute(sql, one, prepare=True)
            return
        self.begin(conn, immediate=immediate)
        conn.executemany(sql, args)
        self.commit(conn)

    def _write(self, conn: Any, frees: list[dict[str, Any]], params: Mapping[str, Any]) -> Any:
        columns = {
            "k": [r["k"] for r in frees],
            "s": [r["s"] for r in frees],
            "at": [r["at"] for r in frees],
        }
        return self._run(conn, self._take, {**params, **columns})

    def _run(self, conn: Any, statement: RawStatement, params: Mapping[str, Any]) -> Any:
        sql, args = statement.args(self._dialect, params)
        if self._pg:
            return conn.execute(sql, args, prepare=True)
        return conn.execute(sql, args)


def _build_write() -> sa.Update:
    """Free the slots of `k`, `s` and `at` (arrays, as `_FREE` one by one), then take for
    several keys (PostgreSQL): `ks` and `ns` are arrays, each key takes at most its own `n`,
    as `_build_take` does for one. One statement, so one round trip and one transaction.

    The frees are a data-modifying CTE (`freeing`), run whether or not anything is taken.
    Every part of a statement sees the rows as they were when it began, so the take cannot
    see what the CTE frees; it leaves those rows alone (`NOT EXISTS`): a row changed twice by
    one statement ends in either state, unpredictably. Such a row is in flight (held) anyway,
    unless its hold ran out.

    Each key's budget row is joined outside its subquery: inside, the join's order hid the
    primary key's slot order from the `ORDER BY slot LIMIT n`, and the subquery read and sorted
    every free slot of the key (~1,000 for 1) instead of stopping at the first `n`.

    The rows the per-key subqueries locked (`taken`) are updated by their `ctid`. Joined back
    on (key, slot) instead, the planner, which cannot know how many rows each key takes,
    scanned every slot of every key: ~8 ms for 20 keys of 1,000 slots instead of ~0.5 ms.
    A locked row cannot change before the update, in the same statement, touches it; at worst
    (a row changed just before the lock, should its old `ctid` come back) a slot is not taken
    this time, and never twice.

    Both updates also name their rows' keys and slots as arrays (`_by_key_and_slot`), which
    the primary key answers: with the `ctid` alone the planner costs a TID scan as ten random
    page reads, more than reading a small table whole, and read all of `rate_slots` (one key
    of 1,000 slots, 9 pages: every statement of a busy worker read 1,000 rows for 2).
    """
    now = sa.bindparam("now", type_=sa.BigInteger)
    keys = sa.bindparam("ks", type_=postgresql.ARRAY(sa.String))
    wants = (
        sa.func.unnest(keys, sa.bindparam("ns", type_=postgresql.ARRAY(sa.Integer)))
        .table_valued("k", "n")
        .render_derived(name="wants")
    )
    freeing = _build_free_many().returning(s.c.key, s.c.slot).cte("freeing")
    inner = s.alias("free")
    free = (
        sa.select(sa.literal_column(f"{inner.name}.ctid").label("row"), inner.c.slot)
        .where(
            inner.c.key == wants.c.k,
            inner.c.free_at_ms <= now,
            inner.c.slot < _cap(),
            ~sa.exists().where(freeing.c.key == inner.c.key, freeing.c.slot == inner.c.slot),
        )
        .order_by(inner.c.slot)
        .limit(wants.c.n)
        .with_for_update(of=inner, skip_locked=True)
        .lateral("locked")
    )
    taken = (
        sa.select(free.c.row, free.c.slot)
        .select_from(wants)
        .join(t, sa.and_(t.c.key == wants.c.k, t.c.paused_until_ms <= now))
        .join(free, sa.true())
        .cte("taken")
        .prefix_with("MATERIALIZED")  # locked once, read twice
    )
    slots = sa.func.array(sa.select(taken.c.slot).scalar_subquery())
    rows = sa.func.array(sa.select(taken.c.row).scalar_subquery())
    return (
        s.update()
        .where(
            _by_key_and_slot(keys, slots),
            sa.literal_column(f"{s.name}.ctid") == sa.any_(rows),
        )
        .values(free_at_ms=sa.bindparam("hold", type_=sa.BigInteger), in_flight=True, taken_ms=now)
        .returning(s.c.key, s.c.slot)
        .add_cte(freeing)
    )


def _by_key_and_slot(keys: Any, slots: Any) -> sa.ColumnElement[bool]:
    """`key = ANY(keys) AND slot = ANY(slots)`: index conditions on the primary key."""
    return sa.and_(s.c.key == sa.any_(keys), s.c.slot == sa.any_(slots))


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
_RENEW_AT = sa.bindparam("at", type_=sa.BigInteger)
# A renewal extends a slot still in flight (an answer's free, written first or later, wins);
# never shortens a hold (another process's, on a slot taken again after ours ran out).
_RENEW = (
    s.update()
    .where(
        s.c.key == sa.bindparam("k"),
        s.c.slot == sa.bindparam("s"),
        s.c.in_flight.is_(True),
        s.c.free_at_ms < _RENEW_AT,
    )
    .values(free_at_ms=_RENEW_AT)
)
_FREE = (
    s.update()
    .where(s.c.key == sa.bindparam("k"), s.c.slot == sa.bindparam("s"))
    .values(free_at_ms=sa.bindparam("at", type_=sa.BigInteger), in_flight=False)
)


def _build_free_many() -> sa.Update:
    """`_FREE` for many slots at once (PostgreSQL, the CTE of `_build_write`): `k`, `s` and
    `at` are arrays."""
    rows = (
        sa.func.unnest(
            sa.bindparam("k", type_=postgresql.ARRAY(sa.String)),
            sa.bindparam("s", type_=postgresql.ARRAY(sa.Integer)),
            sa.bindparam("at", type_=postgresql.ARRAY(sa.BigInteger)),
        )
        .table_valued("k", "s", "at")
        .render_derived(name="freed")
    )
    return (
        s.update()
        .where(
            _by_key_and_slot(
                sa.bindparam("k", type_=postgresql.ARRAY(sa.String)),
                sa.bindparam("s", type_=postgresql.ARRAY(sa.Integer)),
            ),
            s.c.key == rows.c.k,
            s.c.slot == rows.c.s,
        )
        .values(free_at_ms=rows.c.at, in_flight=False)
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
