"""SqlRateLimiter's in-flight holds: short, renewed while the process lives.

A slot taken for a request is held one interval and a lease (`Policy.lease_ms`) past its take;
the taking process renews that hold while the request is in flight, up to `Policy.hold_ms`.
A process that dies stops renewing, so the location's other workers get its slots back after
about an interval, not after `hold_ms` (a location's first request has the only slot).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.store import create_engine
from tests._db import migrated

INTERVAL_MS = 10_000  # the default, until the first answer says otherwise
LEASE_MS = 5_000  # `Policy.lease_ms`


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    yield from migrated(database_url)


@pytest.fixture
def other(engine: sa.Engine) -> Iterator[sa.Engine]:
    """Another connection pool on the same database: what a second process would have."""
    second = create_engine(engine.url.render_as_string(hide_password=False))
    yield second
    second.dispose()


def _slot(engine: sa.Engine, key: str, slot: int) -> tuple[bool, int]:
    """(in flight, free_at_ms) of one `rate_slots` row."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT in_flight, free_at_ms FROM rate_slots WHERE key = :k AND slot = :s"),
            {"k": key, "s": slot},
        ).one()
    return bool(row[0]), int(row[1])


def _held_until(engine: sa.Engine, key: str, slot: int, at_ms: int) -> bool:
    return _slot(engine, key, slot) == (True, at_ms)


def _ms(clock: FakeClock) -> int:
    return int(clock.now() * 1000)


def _take_and_die(engine: sa.Engine, clock: FakeClock, key: str) -> None:
    """A process that takes `key`'s slot for a request and is killed before the answer: its
    event loop ends there, with whatever it would have run later (asyncio.run in a thread)."""

    async def take() -> None:
        await SqlRateLimiter(engine, clock=clock).acquire(key)

    asyncio.run(take())


async def _until(condition: Callable[[], bool]) -> None:
    """Until `condition()` holds (the renewer runs every 10 ms of real time); 10 s at most."""
    for _ in range(2_000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not reached in 10 s")


async def test_a_dead_processs_slot_is_free_an_interval_and_a_lease_after_its_take(
    engine: sa.Engine, other: sa.Engine
) -> None:
    """The location's first request (its one slot) was in flight when its process died:
    another process takes the slot 15 s later (10 s interval + 5 s lease), not 120 s."""
    clock = FakeClock()
    await asyncio.to_thread(_take_and_die, engine, clock, "loc")
    alive = SqlRateLimiter(other, clock=clock)
    try:
        clock.advance((INTERVAL_MS + LEASE_MS) / 1000 - 0.1)
        assert await alive._take("loc", 1) == float("inf")  # held: it may still be counted
        clock.advance(0.1)
        await asyncio.wait_for(alive.acquire("loc"), 10)  # a guard: 120 s held it for good
        assert _slot(engine, "loc", 0) == (True, _ms(clock) + INTERVAL_MS + LEASE_MS)
    finally:
        await alive.drain()


_TAKE_AND_HANG = """
import asyncio, sys
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.store import create_engine

async def main():
    await SqlRateLimiter(create_engine(sys.argv[1])).acquire("loc")
    print("taken", flush=True)
    await asyncio.sleep(600)  # the request never answers: SIGKILLed first

asyncio.run(main())
"""


def _take_and_get_killed(url: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _TAKE_AND_HANG, url], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "taken\n"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()


async def test_a_sigkilled_processs_slot_is_free_an_interval_and_a_lease_after_its_death(
    engine: sa.Engine,
) -> None:
    """A real process takes the location's one slot, renews it while it lives, and is
    SIGKILLed: the slot is free 15 s after the kill (on the system clock), not 120 s."""
    url = engine.url.render_as_string(hide_password=False)
    await asyncio.to_thread(_take_and_get_killed, url)
    clock = FakeClock(start=time.time() + (INTERVAL_MS + LEASE_MS) / 1000)
    alive = SqlRateLimiter(engine, clock=clock)
    try:
        await asyncio.wait_for(alive.acquire("loc"), 10)  # a guard: 120 s held it for good
    finally:
        await alive.drain()


async def test_a_live_request_keeps_its_slot_while_in_flight_up_to_the_old_hold(
    engine: sa.Engine, other: sa.Engine
) -> None:
    """A request in flight for a long time (a slow GHL: the client gives up after its
    timeouts) keeps its slot, renewed every second of the limiter's clock, until 120 s after
    the take (the bound a hold always had); the renewer stops once nothing is in flight."""
    clock = FakeClock()
    live = SqlRateLimiter(engine, clock=clock, renew_s=0.01)
    rival = SqlRateLimiter(other, clock=clock)
    try:
        await live.acquire("loc")
        taken = _ms(clock)
        assert _slot(engine, "loc", 0) == (True, taken + INTERVAL_MS + LEASE_MS)
        for _ in range(23):  # 115 s: well past a lease, renewed every 5 s of the clock
            clock.advance(5.0)
            at = min(_ms(clock) + INTERVAL_MS + LEASE_MS, taken + 120_000)
            await _until(partial(_held_until, engine, "loc", 0, at))
            assert await rival._take("loc", 1) == float("inf")
        clock.advance(5.0)  # 120 s: the hold ends as it always did
        await asyncio.wait_for(rival.acquire("loc"), 10)
        await rival.observe("loc", 0, {})
        await live.observe("loc", 0, {})  # the client gave up at last
        await _until(lambda: live._renewer is None)
    finally:
        await live.drain()
        await rival.drain()


async def test_an_answered_slot_is_not_held_again_by_a_renewal_written_after_its_free(
    engine: sa.Engine,
) -> None:
    """A renewal computed before the answer and written after its free leaves the slot free
    (only slots still in flight are renewed), and never shortens a hold."""
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock, renew_s=3_600.0)
    try:
        await limiter.acquire("loc")
        clock.advance(2.0)
        rows, flying = limiter._due_renewals()
        assert flying and [(row["k"], row["s"]) for row in rows] == [("loc", 0)]
        await limiter.observe("loc", 0, {})  # the send failed: free an interval on
        await limiter.drain()
        freed = _slot(engine, "loc", 0)
        assert freed == (False, _ms(clock) + INTERVAL_MS + 2)  # 2 ms: the margin
        await limiter._write_renewals(rows)
        assert _slot(engine, "loc", 0) == freed
        await limiter.acquire("loc")
        held = _slot(engine, "loc", 0)
        await limiter._write_renewals([{"k": "loc", "s": 0, "at": held[1] - 1_000}])
        assert _slot(engine, "loc", 0) == held
    finally:
        await limiter.drain()
