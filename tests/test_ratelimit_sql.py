"""SqlRateLimiter on a real SQLite file and a real PostgreSQL: one budget shared by processes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, FakeClock
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.sandbox._ratelimit import SlidingWindowLimiter
from ghlsync.sandbox._state import Limits
from ghlsync.store import create_engine, migrate


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _second_engine(engine: sa.Engine) -> sa.Engine:
    """Another connection pool on the same database: what a second process would have."""
    return create_engine(engine.url.render_as_string(hide_password=False))


def _headers(max_: int, interval: int, remaining: int = 50) -> dict[str, str]:
    return {
        "X-RateLimit-Max": str(max_),
        "X-RateLimit-Interval-Milliseconds": str(interval),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Daily-Remaining": "150000",
    }


def _max_in_window(times: list[float], window_s: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_paces_through_the_row(engine: sa.Engine) -> None:
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock)
    start = clock.now()
    for _ in range(51):
        await limiter.acquire("loc")
    # 100 per 10 s paced at 98%: 102 ms apart in integer milliseconds.
    assert clock.now() - start == pytest.approx(50 * 0.102, abs=0.06)
    with engine.connect() as conn:
        tat = conn.execute(sa.text("SELECT tat_ms FROM rate_budget WHERE key = 'loc'")).scalar()
    assert tat is not None and tat > start * 1000


async def test_two_instances_share_one_budget(engine: sa.Engine) -> None:
    clock = FakeClock()
    other = _second_engine(engine)
    try:
        limiters = [
            SqlRateLimiter(engine, clock=clock, default_max=20, default_interval_ms=1_000),
            SqlRateLimiter(other, clock=clock, default_max=20, default_interval_ms=1_000),
        ]
        rng = random.Random(3)
        times = []
        for _ in range(120):
            await rng.choice(limiters).acquire("loc")
            times.append(clock.now())
    finally:
        other.dispose()
    assert _max_in_window(times, 1.0) <= 20
    # Alone, each instance would have let its share go at the full pace: 120 in about 6 s.
    assert times[-1] - times[0] >= 119 / 20


@pytest.mark.slow
async def test_concurrent_instances_never_overfill_a_sliding_window(engine: sa.Engine) -> None:
    server = SlidingWindowLimiter(SYSTEM_CLOCK)
    limits = Limits(burst=10, interval_ms=500)
    other = _second_engine(engine)
    denied = 0

    async def send(limiter: SqlRateLimiter, n: int) -> None:
        nonlocal denied
        for _ in range(n):
            await limiter.acquire("loc")
            decision = server.take("loc", limits)
            denied += not decision.allowed
            await limiter.observe("loc", 200 if decision.allowed else 429, decision.headers)

    try:
        a = SqlRateLimiter(engine, default_max=10, default_interval_ms=500)
        b = SqlRateLimiter(other, default_max=10, default_interval_ms=500)
        await asyncio.gather(send(a, 15), send(b, 15))
    finally:
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


async def test_429_pauses_only_that_key_for_every_instance(engine: sa.Engine) -> None:
    clock = FakeClock()
    a = SqlRateLimiter(engine, clock=clock, rng=random.Random(1))
    b = SqlRateLimiter(engine, clock=clock)
    await a.observe("loc1", 429, {})
    assert not await b.has_budget("loc1")
    assert await b.has_budget("loc2")
    start = clock.now()
    await b.acquire("loc2")
    assert clock.now() == start
    await b.acquire("loc1")
    assert 10.0 <= clock.now() - start <= 11.0
    assert (await b.budget("loc1")).throttled == 1


async def test_429_streak_escalates_and_2xx_resets(engine: sa.Engine) -> None:
    clock = FakeClock()
    limiter = SqlRateLimiter(engine, clock=clock, rng=random.Random(1))
    pauses = []
    for _ in range(3):
        await limiter.observe("loc", 429, {})
        pauses.append((await limiter.budget("loc")).paused_until - clock.now())
        await limiter.acquire("loc")
    assert [round(p / 10) for p in pauses] == [1, 2, 4]
    await limiter.observe("loc", 204, {})
    await limiter.observe("loc", 429, {})
    assert (await limiter.budget("loc")).paused_until - clock.now() <= 11


async def test_daily_reserve(engine: sa.Engine) -> None:
    limiter = SqlRateLimiter(engine, clock=FakeClock(), daily_reserve=100)
    await limiter.observe("loc", 200, {"X-RateLimit-Daily-Remaining": "101"})
    assert await limiter.has_budget("loc")
    await limiter.acquire("loc")  # counts down the shared estimate
    assert not await limiter.has_budget("loc")
    assert (await limiter.budget("loc")).daily_remaining == 100


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
        other.dispose()


async def test_unknown_key_reports_defaults(engine: sa.Engine) -> None:
    limiter = SqlRateLimiter(engine, clock=FakeClock())
    budget = await limiter.budget("never-seen")
    assert (budget.max, budget.interval_ms, budget.paused_until) == (100, 10_000, 0.0)
    assert await limiter.has_budget("never-seen")
