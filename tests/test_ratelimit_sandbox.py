"""The limiters against the real sandbox on loopback: paced bursts never see a 429."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._ratelimit import MemoryRateLimiter, SqlRateLimiter
from ghlsync.ghl._seams import RateLimiter
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate

VERSION = "2021-07-28"


def _add_location(sandbox: SandboxServer, **limits: int) -> tuple[str, str]:
    answer = httpx2.post(f"{sandbox.url}/_sandbox/locations", json=limits)
    answer.raise_for_status()
    body = answer.json()
    return body["id"], body["token"]


def _counters(sandbox: SandboxServer) -> dict[str, Any]:
    answer = httpx2.get(f"{sandbox.url}/_sandbox/counters")
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


async def _burst(client: GHLClient, location: str, n: int) -> None:
    path = f"/locations/{location}"
    await asyncio.gather(
        *(client.request("GET", path, key=location, version=VERSION) for _ in range(n))
    )


def _client(sandbox: SandboxServer, tokens: dict[str, str], limiter: RateLimiter) -> GHLClient:
    return GHLClient(base_url=sandbox.url, tokens=StaticTokens(tokens), limiter=limiter)


async def test_paced_burst_gets_no_429(sandbox: SandboxServer) -> None:
    location, token = _add_location(sandbox, burst=20, interval_ms=1_000)
    limiter = MemoryRateLimiter()  # starts at 100 / 10 s, learns 20 / 1 s from the headers
    async with _client(sandbox, {location: token}, limiter) as client:
        await _burst(client, location, 45)
    counters = _counters(sandbox)
    assert counters["calls"][location] == 45
    assert counters["throttled"].get(location, 0) == 0
    budget = await limiter.budget(location)
    assert (budget.max, budget.interval_ms, budget.throttled) == (20, 1_000, 0)


async def test_two_sql_limiters_sharing_a_location_get_no_429(
    sandbox: SandboxServer, sqlite_url: str
) -> None:
    location, token = _add_location(sandbox, burst=20, interval_ms=1_000)
    engines = [create_engine(sqlite_url), create_engine(sqlite_url)]
    migrate(engines[0])
    try:
        clients = [
            _client(sandbox, {location: token}, SqlRateLimiter(engine)) for engine in engines
        ]
        await asyncio.gather(*(_burst(client, location, 20) for client in clients))
        for client in clients:
            await client.aclose()
    finally:
        for engine in engines:
            engine.dispose()
    counters = _counters(sandbox)
    assert counters["calls"][location] == 40
    assert counters["throttled"].get(location, 0) == 0


async def test_injected_429_pauses_only_its_location(sandbox: SandboxServer) -> None:
    slow, slow_token = _add_location(sandbox, burst=100, interval_ms=5_000)
    busy, busy_token = _add_location(sandbox, burst=20, interval_ms=1_000)
    limiter = MemoryRateLimiter()
    httpx2.put(f"{sandbox.url}/_sandbox/faults", json={"429": 1.0}).raise_for_status()
    await limiter.acquire(slow)
    answer = httpx2.get(
        f"{sandbox.url}/locations/{slow}",
        headers={"Authorization": f"Bearer {slow_token}", "Version": VERSION},
    )
    await limiter.observe(slow, answer.status_code, answer.headers)
    httpx2.put(f"{sandbox.url}/_sandbox/faults", json={}).raise_for_status()
    assert answer.status_code == 429
    paused_until = (await limiter.budget(slow)).paused_until
    assert paused_until > 0

    async with _client(sandbox, {busy: busy_token}, limiter) as client:
        await _burst(client, busy, 20)  # about one second: well inside slow's 5 s pause

    assert not await limiter.has_budget(slow)
    assert await limiter.has_budget(busy)
    counters = _counters(sandbox)
    assert counters["calls"][busy] == 20
    assert counters["throttled"].get(busy, 0) == 0
    assert (await limiter.budget(slow)).throttled == 1
