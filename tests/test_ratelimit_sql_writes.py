"""SqlRateLimiter's writes: frees ride on the next take (one statement on PostgreSQL), are
never lost and never wait much longer than `FLUSH_S` when no take follows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, FakeClock
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.ghl._ratelimit._sql import FLUSH_S
from ghlsync.sandbox._ratelimit import SlidingWindowLimiter
from ghlsync.sandbox._state import Limits
from ghlsync.store import create_engine
from tests._db import migrated


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    yield from migrated(database_url)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The limiter's statements psycopg sends (each one a round trip, none pipelined)."""
    import psycopg

    sent: list[str] = []
    real = psycopg.Connection.execute

    def execute(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if "rate_slots" in str(query):
            sent.append(str(query))
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    return sent


def _headers(max_: int, interval: int, remaining: int) -> dict[str, str]:
    """Without the daily count: an answer that changes nothing frees its slot in a batch."""
    return {
        "X-RateLimit-Max": str(max_),
        "X-RateLimit-Interval-Milliseconds": str(interval),
        "X-RateLimit-Remaining": str(remaining),
    }


def _slots(engine: sa.Engine, key: str) -> list[tuple[int, bool, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT slot, in_flight, free_at_ms FROM rate_slots WHERE key = :k ORDER BY slot"
            ),
            {"k": key},
        ).all()
    return [(slot, bool(in_flight), free_at) for slot, in_flight, free_at in rows]


async def _answered_once(limiter: SqlRateLimiter, key: str) -> None:
    """The key's limit learnt (100 per 10 s), then one more call answered: its free pending."""
    await limiter.acquire(key)
    await limiter.observe(key, 200, _headers(100, 10_000, remaining=99))
    await limiter.acquire(key)
    await limiter.observe(key, 200, _headers(100, 10_000, remaining=98))
    assert len(limiter._pending) == 1


@pytest.mark.postgres
async def test_on_postgresql_a_take_writes_the_pending_frees_in_its_own_statement(
    pg_engine: sa.Engine, statements: list[str]
) -> None:
    clock = FakeClock()
    limiter = SqlRateLimiter(pg_engine, clock=clock)
    try:
        await _answered_once(limiter, "loc")
        freed = limiter._pending[0]
        statements.clear()
        await asyncio.wait_for(limiter.acquire("loc"), 5)
        assert len(statements) == 1  # one round trip: the free and the take
        rows = _slots(pg_engine, "loc")
        assert rows[freed["s"]] == (freed["s"], False, freed["at"])  # written, as observed
        assert [slot for slot, in_flight, _ in rows if in_flight] == [2]  # the new take
    finally:
        await limiter.drain()


@pytest.mark.postgres
async def test_on_postgresql_a_flush_queued_next_to_a_take_is_one_statement_with_it(
    pg_engine: sa.Engine, statements: list[str]
) -> None:
    limiter = SqlRateLimiter(pg_engine, clock=FakeClock())
    try:
        await _answered_once(limiter, "loc")
        release = threading.Event()
        blocked = limiter._thread.run(lambda conn: release.wait(10))  # the thread is busy
        statements.clear()
        flush = asyncio.ensure_future(limiter._write_frees())
        take = asyncio.ensure_future(limiter._take("loc", 2))
        await asyncio.sleep(0.01)  # both queued behind the busy job
        release.set()
        await blocked
        await flush
        taken = await take
        assert isinstance(taken, list) and sorted(taken) == [2, 3]
        assert len(statements) == 1
        assert not limiter._pending
        assert [slot for slot, in_flight, _ in _slots(pg_engine, "loc") if in_flight] == [2, 3]
    finally:
        await limiter.drain()


async def test_a_free_with_no_take_after_it_is_written_within_the_flush_delay(
    engine: sa.Engine,
) -> None:
    """No take follows the answer: the free is written `FLUSH_S` after it (plus one
    statement), not kept back for a take that may never come."""
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    try:
        await _answered_once(limiter, "loc")
        slot = limiter._pending[0]["s"]
        start = time.monotonic()
        while _slots(engine, "loc")[slot][1]:  # still in flight in the table
            assert time.monotonic() - start < FLUSH_S + 0.5
            await asyncio.sleep(0.001)
        waited = time.monotonic() - start
        assert waited >= FLUSH_S * 0.9  # the flush waited for a take ...
        assert waited < FLUSH_S + 0.5  # ... then wrote alone (0.5 s: a noisy machine)
        assert not limiter._pending
    finally:
        await limiter.drain()


async def test_a_slot_whose_pending_free_is_due_is_taken_without_a_wait(
    engine: sa.Engine,
) -> None:
    """The take's statement writes the free of the one usable slot, already due (its answer
    older than its reuse time): the caller gets it at once. On PostgreSQL that statement
    cannot take it (it sees the rows as they were), so the key asks again at once instead of
    sleeping until a later slot or polling."""
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock)
    try:
        await limiter.acquire("loc")  # slot 0
        await limiter.observe("loc", 200, _headers(3, 1_000, remaining=2))  # 3 slots now
        await limiter.acquire("loc")  # slot 1
        await limiter.acquire("loc")  # slot 2
        clock.advance(1.01)
        await limiter.acquire("loc")  # slot 0 again; 0, 1, 2 in flight
        await limiter.observe("loc", 200, _headers(3, 1_000, remaining=2))  # frees slot 1
        assert [free["s"] for free in limiter._pending] == [1]
        clock.advance(1.1)  # the free is due; nothing else is free (leases: 6 s)
        before, start = clock.now(), time.monotonic()
        await asyncio.wait_for(limiter.acquire("loc"), 5)  # a lost free: held until its lease ends
        assert clock.now() == before  # no sleep until some other slot frees
        assert time.monotonic() - start < 0.2  # no poll for an answer (0.25 s)
        assert [slot for slot, _ in limiter._in_flight["loc"]] == [2, 0, 1]
    finally:
        await limiter.drain()


async def test_a_late_answer_frees_its_slot_even_when_the_same_statement_takes(
    engine: sa.Engine,
) -> None:
    """An answer after the slot's hold ran out (not renewed: its process looked dead): the
    slot looks free, but its request is in the window for one more interval. The statement
    that writes its free and takes for the key leaves it alone (on PostgreSQL a row changed
    twice by one statement would end either way) and takes the next one."""
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock)
    try:
        await limiter.acquire("loc")  # slot 0
        await limiter.observe("loc", 200, _headers(3, 10_000, remaining=2))  # 3 slots now
        await limiter.acquire("loc")  # slot 1
        await limiter.acquire("loc")  # slot 2
        clock.advance(10.01)
        await limiter.acquire("loc")  # slot 0 again
        clock.advance(6.0)  # the holds of slots 1 and 2 have run out (15 s), not slot 0's
        await limiter.observe("loc", 200, _headers(3, 10_000, remaining=2))  # slot 1, late
        freed = limiter._pending[0]
        assert freed["s"] == 1
        await asyncio.wait_for(limiter.acquire("loc"), 5)
        assert [slot for slot, _ in limiter._in_flight["loc"]][-1] == 2
        assert _slots(engine, "loc")[1] == (1, False, freed["at"])
    finally:
        await limiter.drain()


@pytest.mark.slow
async def test_two_processes_busy_on_one_window_never_overfill_it_and_free_every_slot(
    engine: sa.Engine,
) -> None:
    """Many callers in two processes: frees ride on takes and flushes, none exceeds the
    window, none is lost (every slot is free once the answers are in)."""
    server = SlidingWindowLimiter(SYSTEM_CLOCK)
    limits = Limits(burst=20, interval_ms=300)
    other = create_engine(engine.url.render_as_string(hide_password=False))
    denied = 0
    calls = {"a": 0, "b": 0}

    async def caller(name: str, limiter: SqlRateLimiter, count: int) -> None:
        nonlocal denied
        for _ in range(count):
            await limiter.acquire("loc")
            await asyncio.sleep(0.001)  # the request's trip
            decision = server.take("loc", limits)
            denied += not decision.allowed
            calls[name] += 1
            await limiter.observe("loc", 200 if decision.allowed else 429, decision.headers)

    a = SqlRateLimiter(engine, default_max=20, default_interval_ms=300)
    b = SqlRateLimiter(other, default_max=20, default_interval_ms=300)
    try:
        callers = [caller("a", a, 5) for _ in range(12)] + [caller("b", b, 5) for _ in range(12)]
        await asyncio.wait_for(asyncio.gather(*callers), 30)  # lost frees: held for 120 s
    finally:
        await a.drain()
        await b.drain()
        other.dispose()
    assert denied == 0
    assert calls == {"a": 60, "b": 60}
    rows = _slots(engine, "loc")
    assert len(rows) == 20 and not [slot for slot, in_flight, _ in rows if in_flight]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_sqlite_callers_ready_together_share_one_take(engine: sa.Engine) -> None:
    """Six callers of one key start in the same turn of the loop: one transaction takes a
    slot for each (it used to be one take per caller, since a take on the loop's own
    connection runs before any other caller can queue behind it)."""
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    takes: list[Any] = []
    real = limiter._take_all

    def counted(conn: Any, wants: list[tuple[str, int]], **kwargs: Any) -> Any:
        takes.append(wants)
        return real(conn, wants, **kwargs)

    try:
        await limiter.acquire("loc")  # the key's rows made and its limit learnt
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
        limiter._take_all = counted  # type: ignore[method-assign]
        await asyncio.wait_for(asyncio.gather(*(limiter.acquire("loc") for _ in range(6))), 5)
        assert takes == [[("loc", 6)]]
        in_flight = [slot for slot, flying, _ in _slots(engine, "loc") if flying]
        assert len(in_flight) == 6 and len(limiter._in_flight["loc"]) == 6
    finally:
        await limiter.drain()


@pytest.mark.postgres
async def test_on_postgresql_two_takes_of_one_key_in_one_statement_share_its_slots(
    pg_engine: sa.Engine,
) -> None:
    """Takes of one key queued together (`_take_alongside`) go in one statement as one take,
    and each gets slots of its own."""
    limiter = SqlRateLimiter(pg_engine, clock=FakeClock())
    try:
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
        release = threading.Event()
        blocked = limiter._thread.run(lambda conn: release.wait(10))  # the thread is busy
        first = asyncio.ensure_future(limiter._take("loc", 2))
        second = asyncio.ensure_future(limiter._take("loc", 3))
        await asyncio.sleep(0.05)  # both queued behind the busy thread: one batch
        release.set()
        await blocked
        a, b = await first, await second
        assert isinstance(a, list) and isinstance(b, list)
        assert len(a) == 2 and len(b) == 3 and not set(a) & set(b)
        in_flight = [slot for slot, busy, _ in _slots(pg_engine, "loc") if busy]
        assert sorted(in_flight) == sorted([*a, *b])  # (slot 0's answer freed it)
    finally:
        await limiter.drain()


@pytest.mark.postgres
async def test_on_postgresql_callers_of_an_open_window_take_beside_a_take_in_flight(
    pg_engine: sa.Engine,
) -> None:
    """While a key's last take got all it asked, a caller no take in flight serves takes at
    once, beside it, instead of waiting for its round trip; every caller gets its own slot."""
    limiter = SqlRateLimiter(pg_engine, clock=FakeClock())
    try:
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(100, 10_000, remaining=99))
        await limiter.acquire("loc")  # learnt: this take got what it asked, the window is open
        assert limiter._open["loc"]
        release = threading.Event()
        blocked = limiter._thread.run(lambda conn: release.wait(10))  # the thread is busy
        early = asyncio.ensure_future(limiter.acquire("loc"))
        await asyncio.sleep(0.02)  # its take is queued
        assert limiter._asked["loc"] == 1
        late = asyncio.ensure_future(limiter.acquire("loc"))
        await asyncio.sleep(0.02)
        assert limiter._asked["loc"] == 2  # asked beside it (before: waited for its turn)
        release.set()
        await blocked
        await asyncio.wait_for(asyncio.gather(early, late), 5)
        slots = [slot for slot, _ in limiter._in_flight["loc"]]
        assert len(slots) == 3 and len(set(slots)) == 3  # (the first one's answer came)
    finally:
        await limiter.drain()


@pytest.mark.postgres
async def test_on_postgresql_a_full_window_makes_its_callers_take_turns_again(
    pg_engine: sa.Engine,
) -> None:
    """A take that comes back short closes the window: the next callers wait for one
    another's take under the key's lock (one asks, the others are served by it or wait)."""
    clock = FakeClock()
    limiter = SqlRateLimiter(pg_engine, clock=clock)
    try:
        await limiter.acquire("loc")
        await limiter.observe("loc", 200, _headers(3, 10_000, remaining=2))  # 3 slots
        await limiter.acquire("loc")
        await limiter.acquire("loc")
        assert limiter._open["loc"]
        seen: list[bool] = []
        wait = limiter._wait

        async def recorded(key: str, wait_ms: float) -> None:
            seen.append(limiter._open[key])
            await wait(key, wait_ms)

        limiter._wait = recorded  # type: ignore[method-assign]
        await asyncio.wait_for(limiter.acquire("loc"), 5)  # none free: waits (fake time)
        assert seen == [False]  # closed while it waited: the others would take turns
    finally:
        await limiter.drain()
