"""The answer's headers are decoded once (`_lowered`) for the limiter and `RateInfo`: the
same `RateInfo` and the same limiter outcome as from the response's own `httpx2.Headers`,
whatever the names' case, repeats, or Retry-After (seconds, HTTP-date, garbage)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx2

from ghlsync._clock import FakeClock
from ghlsync.ghl import MemoryRateLimiter
from ghlsync.ghl._client import GHLClient, RateInfo, _lowered
from ghlsync.ghl._ratelimit import _policy as p
from ghlsync.ghl._seams import Budget
from ghlsync.ghl._tokens import StaticTokens

_NAMES = [
    "x-ratelimit-max",
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
    "x-RATELIMIT-remaining",
    "X-RATELIMIT-LIMIT-DAILY",
    "x-ratelimit-daily-remaining",
    "X-RateLimit-Interval-Milliseconds",
    "Retry-After",
    "retry-AFTER",
    "date",
]
_WALL = 1_700_000_000.0
_HTTP_DATE = format_datetime(datetime.fromtimestamp(_WALL + 42, UTC), usegmt=True)
_VALUES = ["1", "0", "x", "", " 7 ", "10, 20", "99", "-3", _HTTP_DATE, "Tue, 99 Foo"]


def _random_headers(rng: random.Random) -> httpx2.Headers:
    return httpx2.Headers(
        [(rng.choice(_NAMES), rng.choice(_VALUES)) for _ in range(rng.randint(0, 9))]
    )


def test_decoded_once_reads_as_the_headers_do() -> None:
    rng = random.Random(13)
    for _ in range(3000):
        headers = _random_headers(rng)
        lowered = _lowered(headers)
        assert RateInfo._from_lowered(lowered) == RateInfo.from_headers(headers)
        assert RateInfo.from_headers(lowered) == RateInfo.from_headers(headers)
        assert p.RateHeaders.parse(lowered, _WALL) == p.RateHeaders.parse(headers, _WALL)


class _Twins:
    """The client's limiter, and a twin given each answer's own `httpx2.Headers`."""

    def __init__(self, clock: FakeClock) -> None:
        self.used = MemoryRateLimiter(clock)
        self.twin = MemoryRateLimiter(clock)
        self.answer: httpx2.Response | None = None
        self.given: list[Mapping[str, str]] = []
        self.budgets: list[tuple[Budget, Budget]] = []

    async def acquire(self, key: str) -> None:
        await self.used.acquire(key)
        await self.twin.acquire(key)

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        assert self.answer is not None
        self.given.append(headers)
        await self.used.observe(key, status, headers)
        await self.twin.observe(key, status, self.answer.headers)
        self.budgets.append((await self.used.budget(key), await self.twin.budget(key)))

    async def has_budget(self, key: str) -> bool:
        return await self.used.has_budget(key)

    async def budget(self, key: str) -> Budget:
        return await self.used.budget(key)


async def test_the_limiter_and_last_rate_see_what_the_headers_say() -> None:
    clock = FakeClock(_WALL)
    limiter = _Twins(clock)
    answers = [
        (200, [("X-RateLimit-Max", "5"), ("x-ratelimit-REMAINING", "4"), ("Date", "x")]),
        (429, [("X-RATELIMIT-remaining", "0"), ("retry-AFTER", "7"), ("X-RateLimit-Max", "5")]),
        (429, [("X-RateLimit-Remaining", "0"), ("Retry-After", _HTTP_DATE)]),
        (200, [("x-ratelimit-remaining", "3"), ("X-RateLimit-Daily-Remaining", "90")]),
    ]
    rates: list[RateInfo | None] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        status, headers = answers[len(limiter.given)]
        limiter.answer = httpx2.Response(status, json={"contact": {"id": "c"}}, headers=headers)
        rates.append(RateInfo.from_headers(limiter.answer.headers))
        return limiter.answer

    async with GHLClient(
        base_url="http://ghl.test",
        tokens=StaticTokens({"loc": "pit-0123456789abcdef"}),
        limiter=limiter,
        transport=httpx2.MockTransport(handle),
        clock=clock,
    ) as client:
        await client.request("GET", "/contacts/c", key="loc", version="2021-07-28")
        assert client.last_rate("loc") == rates[-1]
        await client.request("GET", "/contacts/c", key="loc", version="2021-07-28")
        assert client.last_rate("loc") == rates[-1]
    assert len(limiter.given) == 4  # each 429 retried
    assert [rate.remaining if rate else None for rate in rates] == [4, 0, 0, 3]
    for used, twin in limiter.budgets:
        assert used == twin
    paused = limiter.budgets[1][0].paused_until
    assert paused > 0 and limiter.budgets[2][0].paused_until >= _WALL + 42  # both Retry-Afters
