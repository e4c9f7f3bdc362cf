"""Scale-out: `ghlsync worker` processes on one PostgreSQL database (docs/benchmarks.md).

    python bench/bench_scale.py                  # everything (several minutes)
    python bench/bench_scale.py --only idle      # one part: idle | throughput | limits | latency

Every run uses a fresh PostgreSQL database (GHLSYNC_TEST_POSTGRES_URL, as the tests) and the
GHL sandbox on loopback, in this process (a uvicorn thread; this driver otherwise only sleeps,
feeds events and reads results). Workers are real `ghlsync worker` processes.

- idle: CPU time of one idle worker over 10 s (from /proc), after it started and LISTENs.
- throughput: 2,000 contacts over 10 locations, 1, 2 and 4 workers; the sandbox with limits
  so high it never throttles ("instant GHL": it answers from memory, but it is a real HTTP
  server sharing the 2 cores). Rate = synced items / (last completion - first completion).
- limits: 4 workers (concurrency 20 each), 50 locations, each limited to 30 requests per 30 s
  (BENCH_SCALE_BURST / BENCH_SCALE_INTERVAL_MS) with a backlog of three windows; per location
  the share of its limit it used (the least time the limit allows for its calls over the time
  they took, from the sandbox's own call log); 429s counted.
- acquire_cpu: `SqlRateLimiter` alone on PostgreSQL, CPU per acquire + observe (with
  BENCH_ACQUIRE_DB=sqlite: on a SQLite file instead).
- latency: 49 quiet locations get one contact every 2 s each for 30 s; p50/p99 of
  (completed - received), without and with a noisy location holding a 3,000-item backlog.
  Arrivals spread over each 2 s (BENCH_SCALE_ARRIVALS=spread, the default: location k's
  webhook k/49 into the period) or all 49 at its start (=burst, the model before 2026-12-06).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' rig

from tests._db import fresh_postgres_database
from tests._scale_kit import (
    Rig,
    accept_all,
    contact_events,
    make_rig,
    stop_all,
    unsettled,
    wait_until_settled,
)

from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.sandbox._state import Limits
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import audit_log, inbox

INSTANT = Limits(burst=1_000_000, interval_ms=1_000, daily=100_000_000)
SHORT = Limits(
    burst=int(os.environ.get("BENCH_SCALE_BURST", "30")),
    interval_ms=int(os.environ.get("BENCH_SCALE_INTERVAL_MS", "30000")),
)  # the limits part's per-location limit (environment: a smaller one for a loaded machine)


@contextmanager
def rig_for(**kwargs: Any) -> Iterator[Rig]:
    databases = fresh_postgres_database()
    url = next(databases)
    rig = make_rig(url, Path(tempfile.mkdtemp(prefix="bench_scale_")), **kwargs)
    try:
        yield rig
    finally:
        rig.close()
        for _ in databases:
            pass


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_idle() -> None:
    with rig_for(locations=1, limits=INSTANT) as rig:
        proc = rig.start_worker()
        rig.worker_id(proc)
        time.sleep(3)  # start-up done, LISTEN in place
        before = cpu_seconds(proc.pid)
        time.sleep(10)
        used = cpu_seconds(proc.pid) - before
        stop_all(rig, [proc])
    print(f"idle: one worker used {used * 1000:.0f} ms CPU in 10 s ({used / 10:.2%} of a core)")


def completion_span(engine: sa.Engine, where: Any = None) -> tuple[int, float]:
    """(synced items, seconds from first to last completion)."""
    a = audit_log.c
    query = sa.select(sa.func.count(), sa.func.min(a.at), sa.func.max(a.at)).where(
        a.action.in_(("created", "updated"))
    )
    if where is not None:
        query = query.where(where)
    with engine.connect() as conn:
        n, first, last = conn.execute(query).one()
    return int(n), float(last - first) if n > 1 else 0.0


def bench_throughput(items: int = 2000, locations: int = 10) -> None:
    for workers in (1, 2, 4):
        with rig_for(locations=locations, limits=INSTANT) as rig:
            per = items // locations
            accept_all(
                rig.engine,
                (e for loc in rig.locations for e in contact_events(loc, per, 1, at=1.0)),
                batch=200,
            )
            procs = [rig.start_worker() for _ in range(workers)]
            wait_until_settled(rig, timeout=600)
            stop_all(rig, procs)
            n, span = completion_span(rig.engine)
            calls = sum(rig.state.calls.values())
        print(
            f"throughput: {workers} worker(s): {n} items in {span:.1f} s = "
            f"{n / span:.0f} items/s ({calls} GHL calls)"
        )


def per_location_rates(rig: Rig) -> dict[str, float]:
    """Share of its limit each location used, from the sandbox's call log (time of arrival).

    A fresh window lets `burst` calls go at once and `burst` more each interval, so C calls
    need at least `(ceil(C / burst) - 1) × interval` from the first to the last; the share is
    that minimum over the time the calls actually took (1.0: the limit allowed no faster).
    """
    times: dict[str, list[float]] = {}
    for record in rig.state.requests:
        if record.get("status") in (200, 201):
            times.setdefault(record["location"], []).append(record["time"])
    rates = {}
    for loc, ts in times.items():
        ts.sort()
        minimum = (math.ceil(len(ts) / SHORT.burst) - 1) * SHORT.interval_ms / 1000
        if minimum > 0:
            rates[loc] = minimum / (ts[-1] - ts[0])
    return rates


def bench_limits(locations: int = 50, backlog: int = 3 * SHORT.burst) -> None:
    # 4 x 20 slots: every busy location needs an item in flight (waiting for its slot) to use
    # its whole budget, so the slots must outnumber the locations (docs/deployment.md).
    with rig_for(locations=locations, limits=SHORT, worker={"concurrency": 20}) as rig:
        accept_all(
            rig.engine,
            (e for loc in rig.locations for e in contact_events(loc, backlog, 1, at=1.0)),
            batch=200,
        )
        procs = [rig.start_worker() for _ in range(4)]
        wait_until_settled(rig, timeout=900)
        stop_all(rig, procs)
        rates = per_location_rates(rig)
        throttled = sum(rig.state.throttled.values())
    worst, median = min(rates.values()), statistics.median(rates.values())
    below = sum(1 for r in rates.values() if r < 0.95)
    print(
        f"limits: {len(rates)} locations at {SHORT.burst}/{SHORT.interval_ms} ms, 4 workers: "
        f"median {median:.1%}, worst {worst:.1%} of the limit, {below} below 95%, "
        f"{throttled} 429s"
    )


def quiet_latencies(
    rig: Rig, quiet: list[str], seconds: float, every: float, arrivals: str
) -> list[float]:
    """Each quiet location gets one new contact every `every` seconds, one webhook per
    transaction as they come. `spread`: location k's arrives k/len(quiet) into each period
    (independent locations do not send at the same instant); `burst`: all at the period's
    start, one after another (the model of the runs before 2026-12-06 18:00)."""
    start = time.monotonic()
    round_ = 0
    while time.monotonic() - start < seconds:
        for k, loc in enumerate(quiet):
            if arrivals == "spread":
                due = start + (round_ + k / len(quiet)) * every
                time.sleep(max(0.0, due - time.monotonic()))
            accept_all(rig.engine, contact_events(loc, 1, 1, at=1.0, first=round_), batch=1)
        round_ += 1
        time.sleep(max(0.0, start + round_ * every - time.monotonic()))
    deadline = time.monotonic() + 300
    a, i = audit_log.c, inbox.c
    while True:
        with rig.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(a.at - i.received_at)
                    .select_from(
                        audit_log.join(
                            inbox,
                            sa.and_(a.location_id == i.location_id, a.source_id == i.source_id),
                        )
                    )
                    .where(a.location_id.in_(quiet), a.action.in_(("created", "updated")))
                )
                .scalars()
                .all()
            )
        if len(rows) >= round_ * len(quiet) or time.monotonic() > deadline:
            return sorted(float(r) for r in rows)
        time.sleep(0.5)


ARRIVALS = os.environ.get("BENCH_SCALE_ARRIVALS", "spread")  # latency part: spread | burst


def bench_latency(seconds: float = 30.0, every: float = 2.0, backlog: int = 3000) -> None:
    for noisy in (False, True):
        special = {"loc00": INSTANT}
        with rig_for(locations=50, limits=Limits(100, 10_000), special=special) as rig:
            quiet = rig.locations[1:]
            if noisy:
                accept_all(rig.engine, contact_events("loc00", backlog, 1, at=1.0), batch=200)
            procs = [rig.start_worker() for _ in range(4)]
            for proc in procs:
                rig.worker_id(proc)
            lat = quiet_latencies(rig, quiet, seconds, every, ARRIVALS)
            left = unsettled(rig.engine)
            stop_all(rig, procs)
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        label = f"with a {backlog}-item noisy neighbour" if noisy else "alone"
        label += f", arrivals {ARRIVALS}"
        print(
            f"latency: quiet locations {label}: {len(lat)} items, p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms (noisy backlog left at the end: {left})"
        )


def bench_acquire_cpu(keys: int = 50, rounds: int = 40) -> None:
    """CPU of `SqlRateLimiter` per request on PostgreSQL (or SQLite): `acquire` + `observe` of
    keys whose (learnt) limit never makes anyone wait, so only the limiter's own work is timed."""
    if os.environ.get("BENCH_ACQUIRE_DB") == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench_acquire_")
        databases: Iterator[str] = iter([f"sqlite:///{folder}/ghlsync.db"])
    else:
        databases = fresh_postgres_database()
    url = next(databases)
    try:
        engine = create_engine(url)
        migrate(engine)
        limiter = SqlRateLimiter(engine)
        headers = {
            "X-RateLimit-Max": "1000000",
            "X-RateLimit-Interval-Milliseconds": "1000",
            "X-RateLimit-Remaining": "999999",
            "X-RateLimit-Daily-Remaining": "100000000",
            "X-RateLimit-Limit-Daily": "100000000",
        }

        async def one(key: str) -> None:
            await limiter.acquire(key)
            await limiter.observe(key, 200, headers)

        async def run(concurrency: int) -> tuple[float, float, int]:
            for i in range(keys):  # learn the limits first (not timed)
                await one(f"k{i}")
            cpu, wall = time.process_time(), time.perf_counter()
            n = 0
            for _ in range(rounds):
                await asyncio.gather(
                    *(one(f"k{i}") for i in range(keys) for _ in range(concurrency))
                )
                n += keys * concurrency
            return time.process_time() - cpu, time.perf_counter() - wall, n

        for concurrency in (1, 4):
            cpu, wall, n = asyncio.run(run(concurrency))
            print(
                f"acquire cpu ({engine.dialect.name}): {n} acquire+observe over {keys} keys, "
                f"{concurrency} at once per key: {cpu / n * 1000:.3f} ms CPU each "
                f"({n / wall:.0f}/s wall)"
            )
        engine.dispose()
    finally:
        for _ in databases:
            pass


PARTS: dict[str, Callable[[], None]] = {
    "acquire_cpu": bench_acquire_cpu,
    "idle": bench_idle,
    "throughput": bench_throughput,
    "limits": bench_limits,
    "latency": bench_latency,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PARTS), action="append")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for name in args.only or list(PARTS):
        PARTS[name]()
    load = os.getloadavg()
    print(f"# load at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
