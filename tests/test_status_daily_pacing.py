"""`ghlsync status` says when a location is on daily-budget pacing (rate budget column)."""

from __future__ import annotations

import math
from dataclasses import asdict

import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.cli._engine import _budget
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.store import create_engine, migrate

SIX_AM = (1_700_000_000 // 86_400) * 86_400 + 6 * 3_600


def _headers(daily: int) -> dict[str, str]:
    return {
        "X-RateLimit-Max": "100",
        "X-RateLimit-Interval-Milliseconds": "10000",
        "X-RateLimit-Remaining": "99",
        "X-RateLimit-Daily-Remaining": str(daily),
    }


async def test_status_line_names_daily_budget_pacing(database_url: str) -> None:
    engine: sa.Engine = create_engine(database_url)
    migrate(engine)
    try:
        limiter = SqlRateLimiter(engine, clock=FakeClock(start=SIX_AM))
        await limiter.observe("fresh", 200, _headers(190_000))
        await limiter.observe("behind", 200, _headers(50_000))
        fresh = _budget(asdict(await limiter.budget("fresh")))
        behind = _budget(asdict(await limiter.budget("behind")))
    finally:
        engine.dispose()
    assert "pacing" not in fresh
    pace = math.floor(48_000 * 10_000 / (18 * 3_600_000))
    assert behind == f"99/100 per 10s, 50000 today, daily-budget pacing {pace} per 10s"
