"""Rate-limit utilisation against the sandbox on loopback (DESIGN §5).

    python bench/bench_ratelimit.py --burst 50,300,3000   # N requests against their minimum
    python bench/bench_ratelimit.py            # the former steady-rate scenarios a-c
    python bench/bench_ratelimit.py --quick    # smaller, for a smoke test

`--burst`: N GETs for one fresh location at GHL's 100 per 10 s, through `MemoryRateLimiter`
(and `SqlRateLimiter` on SQLite for N <= 300), against the least time the limit permits:
`ceil(N / 100) - 1` intervals plus the time the same client takes to send `min(N, 100)`
requests with no limiter (measured in the same run, just before).

The sandbox runs in its own process (its sliding-window limiter is what we must never trip);
this process drives `GHLClient` with a `MemoryRateLimiter` (or `SqlRateLimiter` on SQLite for
scenario c). Rates are measured from the sandbox's own call log (the time each request reached
it), as (requests - 1) / (last - first), divided by the advertised max / interval.

a. one location, a backlog of 2,000 requests, limit 100 per 1 s;
b. 50 locations at once, each with a backlog of 200 and GHL's real limit, 100 per 10 s
   (50 x 10/s is what one Python client process and the sandbox sustain on a 2-core machine;
   `--b-interval-ms 5000` doubles it);
c. one location through `SqlRateLimiter` (SQLite), limit 100 per 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._ratelimit import MemoryRateLimiter, SqlRateLimiter
from ghlsync.ghl._seams import RateLimiter
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate

VERSION = "2021-07-28"
# Concurrent requests in flight overall: kept within httpx's default pool (100 connections), so
# a request that has its rate-limit slot is not left queueing for a connection.
MAX_IN_FLIGHT = 100


def _serve(url_out: Any, stop: Any) -> None:
    """Child process: serve the sandbox until told to stop."""
    with SandboxServer() as server:
        url_out.put(server.url)
        stop.wait()


@dataclass
class Result:
    """Measured figures of one location."""

    location: str
    calls: int
    throttled: int
    rate: float  # requests per second, from the sandbox's log
    limit: float  # advertised requests per second

    @property
    def utilisation(self) -> float:
        return self.rate / self.limit


def add_location(url: str, burst: int, interval_ms: int) -> tuple[str, str]:
    """A fresh sandbox location with its own limit; returns (id, token)."""
    answer = httpx2.post(
        f"{url}/_sandbox/locations", json={"burst": burst, "interval_ms": interval_ms}
    )
    answer.raise_for_status()
    body = answer.json()
    return body["id"], body["token"]


async def drain(client: GHLClient, location: str, n: int, workers: int) -> None:
    """Queue `n` GETs for one location and work them off with a few concurrent workers."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            await client.request("GET", f"/locations/{location}", key=location, version=VERSION)

    await asyncio.gather(*(worker() for _ in range(workers)))


def measure(url: str, locations: list[str], burst: int, interval_ms: int) -> list[Result]:
    """Per-location figures from the sandbox's call log."""
    log = httpx2.get(f"{url}/_sandbox/requests", timeout=60).json()
    results = []
    for location in locations:
        mine = [e for e in log if e["location"] == location]
        ok = sorted(e["time"] for e in mine if e["status"] == 200)
        throttled = sum(1 for e in mine if e["status"] == 429)
        rate = (len(ok) - 1) / (ok[-1] - ok[0])
        results.append(Result(location, len(mine), throttled, rate, burst / (interval_ms / 1000)))
    return results


async def scenario(
    url: str,
    n_locations: int,
    per_location: int,
    burst: int,
    interval_ms: int,
    limiter: RateLimiter,
) -> tuple[list[Result], float]:
    """Run the backlogs of `n_locations` locations at once; figures and wall time."""
    created = [add_location(url, burst, interval_ms) for _ in range(n_locations)]
    tokens = dict(created)
    started = time.perf_counter()
    async with GHLClient(base_url=url, tokens=StaticTokens(tokens), limiter=limiter) as client:
        workers = max(1, min(4, MAX_IN_FLIGHT // n_locations))
        await asyncio.gather(*(drain(client, loc, per_location, workers) for loc in tokens))
    elapsed = time.perf_counter() - started
    return measure(url, list(tokens), burst, interval_ms), elapsed


async def send_n(url: str, location: str, token: str, n: int, limiter: RateLimiter | None) -> float:
    """Send `n` GETs for one location, up to MAX_IN_FLIGHT at once; wall seconds from the
    first send to the last answer."""
    async with GHLClient(
        base_url=url, tokens=StaticTokens({location: token}), limiter=limiter
    ) as client:
        started = time.perf_counter()
        await drain(client, location, n, MAX_IN_FLIGHT)
        return time.perf_counter() - started


async def burst_case(url: str, n: int, name: str, limiter: RateLimiter) -> dict[str, Any]:
    """N requests at 100 per 10 s through `limiter` against their minimum.

    The minimum is `ceil(N / 100) - 1` whole intervals plus the time this client takes to
    send the last burst (`min(N, 100)` requests) with no limiter against a location whose
    limit is lifted, measured here, just before. Both start from a new client; the limiter
    starts knowing nothing (its first request, alone, learns the limit) and the window fresh.
    """
    free_loc, free_token = add_location(url, 1_000_000, 10_000)
    baseline = await send_n(url, free_loc, free_token, min(n, 100), None)
    location, token = add_location(url, 100, 10_000)
    elapsed = await send_n(url, location, token, n, limiter)
    minimum = (math.ceil(n / 100) - 1) * 10.0 + baseline
    counters = httpx2.get(f"{url}/_sandbox/counters").json()
    return {
        "scenario": f"{n} requests, 100 per 10 s, {name}",
        "requests": n,
        "throttled_429": counters["throttled"].get(location, 0),
        "sandbox_calls": counters["calls"].get(location, 0),
        "measured_s": elapsed,
        "minimum_s": minimum,
        "baseline_s": baseline,
        "ratio": elapsed / minimum,
    }


def summary(name: str, results: list[Result], elapsed: float) -> dict[str, Any]:
    utilisation = [r.utilisation for r in results]
    return {
        "scenario": name,
        "locations": len(results),
        "requests": sum(r.calls for r in results),
        "throttled_429": sum(r.throttled for r in results),
        "limit_per_s": results[0].limit,
        "min_utilisation": min(utilisation),
        "median_utilisation": statistics.median(utilisation),
        "max_utilisation": max(utilisation),
        "wall_s": elapsed,
    }


async def run(quick: bool, b_interval_ms: int, sizes: list[int]) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    url_out, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(url_out, stop), daemon=True)
    server.start()
    url = url_out.get(timeout=30)
    try:
        if sizes:
            return await _bursts(url, sizes, sql=True)
        return await _scenarios(url, quick, b_interval_ms)
    finally:
        stop.set()
        server.join(timeout=10)


async def _bursts(url: str, sizes: list[int], sql: bool) -> list[dict[str, Any]]:
    out = []
    for n in sizes:
        out.append(await burst_case(url, n, "memory", MemoryRateLimiter()))
        print(json.dumps(out[-1]), flush=True)
        if sql and n <= 300:
            with tempfile.TemporaryDirectory() as tmp:
                engine = create_engine(f"sqlite:///{tmp}/bench.db")
                migrate(engine)
                limiter = SqlRateLimiter(engine)
                out.append(await burst_case(url, n, "SQL (SQLite)", limiter))
                engine.dispose()
            print(json.dumps(out[-1]), flush=True)
    return out


async def _scenarios(url: str, quick: bool, b_interval_ms: int) -> list[dict[str, Any]]:
    out = []
    n_a = 400 if quick else 2_000
    results, elapsed = await scenario(url, 1, n_a, 100, 1_000, MemoryRateLimiter())
    out.append(summary(f"a. 1 location x {n_a}, 100 per 1 s, memory", results, elapsed))
    print(json.dumps(out[-1]), flush=True)

    b_interval = b_interval_ms
    n_b = 100 if quick else 200
    results, elapsed = await scenario(url, 50, n_b, 100, b_interval, MemoryRateLimiter())
    out.append(
        summary(
            f"b. 50 locations x {n_b}, 100 per {b_interval // 1000} s, memory", results, elapsed
        )
    )
    print(json.dumps(out[-1]), flush=True)

    n_c = 100 if quick else 400
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        results, elapsed = await scenario(url, 1, n_c, 100, 5_000, SqlRateLimiter(engine))
        engine.dispose()
    out.append(summary(f"c. 1 location x {n_c}, 100 per 5 s, SQL (SQLite)", results, elapsed))
    print(json.dumps(out[-1]), flush=True)
    return out


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cores = len(os.sched_getaffinity(0))
    return (
        f"{cores} cores (nproc), {model}, Python {platform.python_version()}; "
        f"sandbox and client on the same machine; load average before the run {load} "
        "(other processes share the cores)"
    )


DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- ratelimit:run -->", "<!-- /ratelimit:run -->"
SECTION_HEAD = """## Rate-limit utilisation

Target (DESIGN §5): a backlog for one location drains at ≥ 97% of the limit the headers
advertise, with zero 429s; with 50 locations at once every one stays ≥ 95%.
`python bench/bench_ratelimit.py --write` runs the sandbox (its sliding-window limiter, the
stricter reading of GHL's undocumented window) in a separate process on loopback and drives
`GHLClient` with the limiter from this process; rates come from the sandbox's own call log,
`(requests − 1) / (last − first)` per location, divided by the advertised `max / interval`.
How the limiter works: `docs/rate-limits.md`.

"""


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The results as Markdown table lines."""
    if rows and "ratio" in rows[0]:
        return burst_table(rows)
    lines = [
        "| scenario | requests | 429s | min | median | max | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['requests']} | {r['throttled_429']} "
            f"| {r['min_utilisation']:.1%} | {r['median_utilisation']:.1%} "
            f"| {r['max_utilisation']:.1%} | {r['wall_s']:.1f} |"
        )
    return lines


def burst_table(rows: list[dict[str, Any]]) -> list[str]:
    """N requests against their minimum, as Markdown table lines."""
    lines = [
        "| case | calls seen by the sandbox | 429s | last burst alone (no limiter) "
        "| minimum | measured | measured ÷ minimum |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['sandbox_calls']} | {r['throttled_429']} "
            f"| {r['baseline_s']:.2f} s | {r['minimum_s']:.2f} s | {r['measured_s']:.2f} s "
            f"| {r['ratio']:.3f} |"
        )
    return lines


def write_doc(rows: list[dict[str, Any]], measured_on: str) -> None:
    """Put the figures into docs/benchmarks.md between this section's markers."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = "\n".join([BEGIN, f"Measured {stamp} on {measured_on}.", "", *table(rows), END])
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + SECTION_HEAD + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller backlogs")
    parser.add_argument(
        "--b-interval-ms", type=int, default=10_000, help="scenario b's interval (max is 100)"
    )
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    parser.add_argument(
        "--burst", default="", help="N requests against their minimum instead, e.g. 50,300,3000"
    )
    args = parser.parse_args()
    measured_on = machine()
    print(f"machine: {measured_on}", flush=True)
    sizes = [int(x) for x in args.burst.split(",")] if args.burst else []
    rows = asyncio.run(run(args.quick, args.b_interval_ms, sizes))
    print()
    print("\n".join(table(rows)))
    if args.write:
        write_doc(rows, measured_on)


if __name__ == "__main__":
    main()
