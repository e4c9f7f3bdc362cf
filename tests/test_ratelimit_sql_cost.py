"""SqlRateLimiter's store cost: agreeing headers write nothing, fast keys take slots in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from ghlsync._clock import FakeClock
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.ghl._ratelimit._slots import batch_size, slot_times
from ghlsync.store import create_engine, migrate


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _count_writes(engine: sa.Engine) -> list[str]:
    """Every UPDATE of `rate_budget` run through `engine` (appended as it happens)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE RATE_BUDGET"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen


def _headers(max_: int = 100, remaining: int = 90, daily: int = 150_000) -> dict[str, str]:
    return {
        "X-RateLimit-Max": str(max_),
        "X-RateLimit-Interval-Milliseconds": "10000",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Daily-Remaining": str(daily),
    }


def _remaining(engine: sa.Engine) -> int | None:
    with engine.connect() as conn:
        query = sa.text("SELECT remaining FROM rate_budget WHERE key = 'loc'")
        value: int | None = conn.execute(query).scalar()
    return value


def _max_in_window(times: list[float], window_s: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_observe_skips_headers_that_change_nothing(engine: sa.Engine) -> None:
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock)
    writes = _count_writes(engine)
    await limiter.observe("loc", 200, _headers(remaining=90))
    assert (len(writes), _remaining(engine)) == (1, 90)
    for remaining in (80, 70, 60):  # same limits, nothing unexplained: no write
        await limiter.observe("loc", 200, _headers(remaining=remaining))
    assert (len(writes), _remaining(engine)) == (1, 90)
    clock.advance(1.0)  # ... but the reported numbers are refreshed once a second
    await limiter.observe("loc", 200, _headers(remaining=55))
    assert (len(writes), _remaining(engine)) == (2, 55)


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (429, _headers()),  # a pause
        (200, _headers(max_=50)),  # a new limit
        (200, _headers(remaining=0)),  # fewer left than our pace explains
        (200, _headers(daily=2_500)),  # close to the daily reserve
    ],
)
async def test_observe_writes_what_changes_the_pace(
    engine: sa.Engine, status: int, headers: dict[str, str]
) -> None:
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    writes = _count_writes(engine)
    await limiter.observe("loc", 200, _headers())
    await limiter.observe("loc", status, headers)
    assert len(writes) == 2


async def test_2xx_after_a_429_resets_the_streak_once(engine: sa.Engine) -> None:
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock)
    writes = _count_writes(engine)
    await limiter.observe("loc", 429, {})
    await limiter.observe("loc", 200, {})
    await limiter.observe("loc", 200, {})
    assert len(writes) == 2
    with engine.connect() as conn:
        query = sa.text("SELECT consecutive_429 FROM rate_budget WHERE key = 'loc'")
        assert conn.execute(query).scalar() == 0


async def _two_processes(
    engine: sa.Engine, clock: FakeClock, max_: int, interval_ms: int
) -> tuple[list[float], int]:
    """600 requests from 10 callers in each of two limiters: their times, and how many takes."""
    other = create_engine(engine.url.render_as_string(hide_password=False))
    writes = [_count_writes(engine), _count_writes(other)]
    limiters = [
        SqlRateLimiter(e, clock=clock, default_max=max_, default_interval_ms=interval_ms)
        for e in (engine, other)
    ]
    times: list[float] = []

    async def send(limiter: SqlRateLimiter) -> None:
        for _ in range(30):
            await limiter.acquire("loc")
            times.append(clock.now())

    try:
        await asyncio.gather(*(send(limiter) for limiter in limiters for _ in range(10)))
    finally:
        other.dispose()
    takes = [w for seen in writes for w in seen if "RETURNING" in w]
    return sorted(times), len(takes)


async def test_batches_stay_within_the_shared_bound(engine: sa.Engine) -> None:
    clock = FakeClock()
    times, takes = await _two_processes(engine, clock, max_=100, interval_ms=100)
    assert len(times) == 600
    assert _max_in_window(times, 0.1) <= 100
    assert times[-1] - times[0] >= 500 / 1_000  # 100 per 100 ms: no faster than the limit
    assert takes < 600


async def test_fast_key_takes_slots_in_batches(engine: sa.Engine) -> None:
    times, takes = await _two_processes(engine, FakeClock(), max_=100_000, interval_ms=1_000)
    assert len(times) == 600
    assert 0 < takes <= 600 / 2  # one UPDATE per batch, not per request


def test_batch_size_follows_the_pace() -> None:
    assert batch_size(10, emission_ms=102.0, tolerance_ms=51.0) == 1  # GHL's 100 per 10 s
    assert batch_size(10, emission_ms=0.001, tolerance_ms=0.0) == 10  # as many as wanted
    assert batch_size(1_000, emission_ms=0.001, tolerance_ms=0.0) == 64
    assert batch_size(50, emission_ms=1.0, tolerance_ms=0.0) == 21  # the 20 ms horizon


def test_slot_times_keep_the_schedule() -> None:
    assert slot_times(100.0, 100.0, 3, 2.0, 1.0) == [100.0, 101.0, 103.0]
    assert slot_times(100.0, 90.0, 2, 5.0, 0.0) == [100.0, 100.0]  # idle schedule: none early
