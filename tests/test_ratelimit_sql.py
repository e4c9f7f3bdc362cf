"""SqlRateLimiter on a real SQLite file and a real PostgreSQL: one window shared by processes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from functools import partial

import psycopg
import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, FakeClock
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.sandbox._ratelimit import SlidingWindowLimiter
from ghlsync.sandbox._state import Limits
from ghlsync.store import create_engine, migrate
from tests._db import migrated

SIX_AM = (1_700_000_000 // 86_400) * 86_400 + 6 * 3_600


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _second_engine(engine: sa.Engine) -> sa.Engine:
    """Another connection pool on the same database: what a second process would have."""
    return create_engine(engine.url.render_as_string(hide_password=False))


def _headers(max_: int, interval: int, remaining: int = 50, daily: int = 150_000) -> dict[str, str]:
    return {
        "X-RateLimit-Max": str(max_),
        "X-RateLimit-Interval-Milliseconds": str(interval),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Daily-Remaining": str(daily),
    }


async def test_two_instances_share_one_window_and_use_its_whole_burst(
    engine: sa.Engine,
) -> None:
    clock = FakeClock()
    server = SlidingWindowLimiter(clock)
    limits = Limits(burst=100, interval_ms=10_000)
    other = _second_engine(engine)
    try:
        limiters = [SqlRateLimiter(engine, clock=clock), SqlRateLimiter(other, clock=clock)]
        times = []
        for i in range(300):
            limiter = limiters[i % 2]
            await limiter.acquire("loc")
            times.append(clock.now())
            decision = server.take("loc", limits)
            assert decision.allowed  # never a 429
            await limiter.observe("loc", 200, decision.headers)
    finally:
        for limiter in limiters:
            await limiter.drain()
        other.dispose()
    # Bursts of 100 at 0, 10 and 20 s (2 ms of margin per interval): the minimum, not 30 s.
    assert times[-1] - times[0] == pytest.approx(20.0, abs=0.01)


@pytest.mark.slow
async def test_concurrent_instances_never_overfill_a_sliding_window(engine: sa.Engine) -> None:
    server = SlidingWindowLimiter(SYSTEM_CLOCK)
    limits = Limits(burst=10, interval_ms=500)
    other = _second_engine(engine)
    denied = 0

    async def send(limiter: SqlRateLimiter) -> None:
        nonlocal denied
        await limiter.acquire("loc")
        decision = server.take("loc", limits)
        denied += not decision.allowed
        await limiter.observe("loc", 200 if decision.allowed else 429, decision.headers)

    try:
        a = SqlRateLimiter(engine, default_max=10, default_interval_ms=500)
        b = SqlRateLimiter(other, default_max=10, default_interval_ms=500)
        await asyncio.gather(*(send(a) for _ in range(15)), *(send(b) for _ in range(15)))
    finally:
        await a.drain()
        await b.drain()
        other.dispose()
    assert denied == 0


async def test_observe_adapts_the_shared_row(engine: sa.Engine) -> None:
    clock = FakeClock()
    a = SqlRateLimiter(engine, clock=clock)
    b = SqlRateLimiter(engine, clock=clock)
    await a.observe("loc", 200, _headers(max_=50, interval=5_000, remaining=42))
    budget = await b.budget("loc")
    assert (budget.max, budget.interval_ms, budget.remaining) == (50, 5_000, 42)
    assert budget.daily_remaining == 150_000


async def test_429_pauses_only_that_key_for_every_instance_until_the_window_reopens(
    engine: sa.Engine,
) -> None:
    clock = FakeClock()
    a = SqlRateLimiter(engine, clock=clock)
    b = SqlRateLimiter(engine, clock=clock)
    await a.acquire("loc1")
    await a.observe("loc1", 200, _headers(100, 10_000, remaining=99))
    clock.advance(4.0)
    await a.acquire("loc1")
    await a.observe("loc1", 429, _headers(100, 10_000, remaining=0))
    assert not await b.has_budget("loc1")
    assert await b.has_budget("loc2")
    start = clock.now()
    await b.acquire("loc2")
    assert clock.now() == start
    await b.acquire("loc1")  # when our first request leaves the window: 6 s, not 10 or more
    assert 6.0 <= clock.now() - start <= 6.01
    assert (await b.budget("loc1")).throttled == 1


async def test_a_second_429_waits_a_whole_window_and_2xx_resets(engine: sa.Engine) -> None:
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock)
    await limiter.observe("loc", 429, {})
    first = (await limiter.budget("loc")).paused_until - clock.now()
    clock.advance(first)
    await limiter.observe("loc", 429, {})
    second = (await limiter.budget("loc")).paused_until - clock.now()
    assert first == pytest.approx(10.0, abs=0.01) and second == pytest.approx(10.0, abs=0.01)
    await limiter.observe("loc", 204, {})
    with engine.connect() as conn:
        streak = conn.execute(sa.text("SELECT consecutive_429 FROM rate_budget")).scalar()
    assert streak == 0


async def test_daily_reserve(engine: sa.Engine) -> None:
    limiter = SqlRateLimiter(engine, clock=FakeClock(), daily_reserve=100)
    await limiter.observe("loc", 200, {"X-RateLimit-Daily-Remaining": "190000"})
    assert await limiter.has_budget("loc")
    await limiter.observe("loc", 200, {"X-RateLimit-Daily-Remaining": "100"})
    assert not await limiter.has_budget("loc")
    assert (await limiter.budget("loc")).daily_remaining == 100


async def test_a_backlog_ahead_of_the_day_is_paced_and_status_can_say_so(
    engine: sa.Engine,
) -> None:
    clock = FakeClock(start=SIX_AM)
    limiter = SqlRateLimiter(engine, clock=clock)
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99, daily=50_000))
    budget = await limiter.budget("loc")
    assert budget.daily_pace == math.floor(48_000 * 10_000 / (18 * 3_600_000))
    for _ in range(budget.daily_pace - 1):
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=95, daily=50_000))
    assert not await limiter.has_budget("loc")
    clock.advance(10.01)
    assert await limiter.has_budget("loc")


async def test_a_day_spent_down_to_the_reserve_is_probed_once_then_resumes(
    engine: sa.Engine,
) -> None:
    clock = FakeClock()
    other = _second_engine(engine)
    try:
        a = SqlRateLimiter(engine, clock=clock, daily_reserve=100)
        b = SqlRateLimiter(other, clock=clock, daily_reserve=100)
        await a.observe("loc", 200, {"X-RateLimit-Daily-Remaining": "90"})
        clock.advance(299)
        assert not await a.has_budget("loc") and not await b.has_budget("loc")
        clock.advance(1)  # five quiet minutes: the stored count may predate a reset
        assert await a.has_budget("loc") and await b.has_budget("loc")
        await b.acquire("loc")  # one process's probe closes the door for every process
        assert not await a.has_budget("loc")
        await b.observe("loc", 200, {"X-RateLimit-Daily-Remaining": "199999"})
        assert await a.has_budget("loc")  # the day has reset: claims resume at once
    finally:
        await b.drain()
        other.dispose()


async def test_slots_taken_for_callers_that_gave_up_are_handed_back(engine: sa.Engine) -> None:
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock)
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
    taken = await limiter._take("loc", 5)
    assert isinstance(taken, list) and len(taken) == 5
    await limiter._thread.run(partial(limiter._hand_back, "loc", taken))
    other = SqlRateLimiter(engine, clock=clock)
    again = await other._take("loc", 99)
    assert isinstance(again, list) and len(again) == 99  # every slot but the answered one


async def test_takes_queued_together_each_take_only_their_own_keys_share(
    engine: sa.Engine,
) -> None:
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    for key, max_ in (("a", 3), ("b", 100)):
        await limiter.acquire(key)
        await limiter.observe(key, 200, _headers(max_, 10_000, remaining=max_ - 1))
    await limiter.acquire("c")  # unanswered, limit unknown: its one usable slot is in flight
    a, b, c = await asyncio.gather(  # one statement on PostgreSQL
        limiter._take("a", 8), limiter._take("b", 5), limiter._take("c", 2)
    )
    assert isinstance(a, list) and sorted(a) == [1, 2]  # slot 0 answered: busy for 10 s
    assert isinstance(b, list) and sorted(b) == [1, 2, 3, 4, 5]
    assert c == math.inf


async def test_unknown_key_reports_defaults(engine: sa.Engine) -> None:
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    budget = await limiter.budget("never-seen")
    assert (budget.max, budget.interval_ms, budget.paused_until) == (100, 10_000, 0.0)
    assert await limiter.has_budget("never-seen")


@pytest.mark.postgres
async def test_a_dropped_connection_fails_one_take_and_the_next_reconnects(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url)
    migrate(engine)
    admin = _second_engine(engine)
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    try:
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=98))  # a pending free
        with admin.connect() as conn:  # the server drops every other session (a restart)
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        with pytest.raises(sa.exc.DBAPIError) as dropped:  # the free and the take: one pipeline
            await limiter.acquire("loc")
        assert dropped.value.connection_invalidated
        await limiter.acquire("loc")  # the caller's retry: on a new connection
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=97))
        assert (await limiter.budget("loc")).max == 100
    finally:
        await limiter.drain()
        admin.dispose()
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("lost", [False, True])
async def test_on_postgresql_a_failed_take_writes_its_frees_later_unless_the_line_was_lost(
    postgres_url: str, lost: bool
) -> None:
    """Frees and takes are one statement. One that failed with the connection still there
    committed nothing: its frees are queued again, and written by the next statement (the
    slot is not held until its hold runs out). One whose connection was lost may have
    committed before the error came back, and the slot may be taken anew before a later
    statement would write the free again (which would free a call in flight): not queued."""
    engine = create_engine(postgres_url)
    migrate(engine)
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    try:
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=98))  # a pending free
        assert limiter._pending
        hot = limiter._hot

        def fail(conn: object, frees: list[dict[str, object]], params: object) -> None:
            if lost:
                conn.close()  # type: ignore[attr-defined]
                raise psycopg.OperationalError("the connection is lost")
            raise psycopg.errors.SerializationFailure("the take failed")

        real = hot.take_many
        hot.take_many = fail  # type: ignore[method-assign,assignment]
        with pytest.raises(sa.exc.DBAPIError):
            await limiter.acquire("loc")
        hot.take_many = real  # type: ignore[method-assign]
        assert bool(limiter._pending) is not lost
        await limiter.drain()
        with engine.connect() as conn:
            in_flight = conn.execute(
                sa.text("SELECT count(*) FROM rate_slots WHERE key = 'loc' AND in_flight")
            ).scalar()
        assert in_flight == (1 if lost else 0)  # lost: held until its hold runs out
    finally:
        await limiter.drain()
        engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    yield from migrated(sqlite_url)


async def test_on_sqlite_takes_and_frees_run_on_the_loops_own_connection(
    sqlite_engine: sa.Engine,
) -> None:
    """No thread hand-off on the hot path: the limiter's thread is never started."""
    limiter = SqlRateLimiter(sqlite_engine, clock=FakeClock())
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
    for remaining in (98, 97, 96):
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=remaining))
    await limiter.drain()
    assert not limiter._thread._running
    with sqlite_engine.connect() as conn:
        freed = conn.execute(
            sa.text("SELECT count(*) FROM rate_slots WHERE key = 'loc' AND in_flight = 0")
        ).scalar()
    assert freed == 100  # every answered slot written back


async def test_a_take_that_finds_sqlites_lock_held_waits_in_the_thread_and_keeps_the_frees(
    sqlite_engine: sa.Engine,
) -> None:
    """Another writer holds the lock longer than the loop's 2 ms: the take and the freed slots
    waiting to be written go to the limiter's thread, the loop keeps running, nothing is lost."""
    clock = FakeClock()
    limiter = SqlRateLimiter(sqlite_engine, clock=clock)
    await limiter.acquire("loc")
    await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
    await limiter.acquire("loc")
    clock.advance(0.001)
    await limiter.observe("loc", 200, _headers(100, 10_000, remaining=98))  # a pending free
    assert limiter._pending
    # Only the take writes it here: the flush the answer scheduled (5 ms later) would race the
    # take for it, and a failed loop flush puts it back after the thread's take began without
    # it (nothing lost: the thread writes it next; but this test could not see it taken).
    assert limiter._flusher is not None
    limiter._flusher.cancel()
    blocker = sqlite_engine.raw_connection()
    blocker.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    taking = asyncio.create_task(limiter._take("loc", 3))
    for _ in range(1000):  # the thread took the frees, to write them first (10 s at most)
        if not limiter._pending:
            break
        await asyncio.sleep(0.01)
    assert not limiter._pending
    before = ticks
    await asyncio.sleep(0.1)
    assert not taking.done() and ticks > before  # waiting in the thread, not on the loop
    blocker.driver_connection.execute("COMMIT")  # type: ignore[union-attr]
    blocker.close()
    taken = await taking
    ticker.cancel()
    assert isinstance(taken, list) and sorted(taken) == [2, 3, 4]  # 0, 1 answered: busy 10 s
    await limiter.drain()
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT slot, in_flight FROM rate_slots WHERE key = 'loc' ORDER BY slot")
        ).all()
    assert [tuple(r) for r in rows][:6] == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 1), (5, 0)]
