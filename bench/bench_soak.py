"""Soak: the RSS of a real `ghlsync serve` under a steady stream of deliveries.

    python bench/bench_soak.py [--minutes 10] [--rate 500] [--sample-seconds 10] [--write]

Starts the GHL stand-in (`bench/_instant_ghl.py`, another process, loopback HTTP) and the
real `ghlsync serve` (receiver + worker, SQLite file, `SqlRateLimiter`, the preset's
concurrency) pointed at it through the environment overrides, then sends `--rate` new-customer
deliveries per second (open loop, `bench/_engine_workload.py --mix new`) for `--minutes`.
Every `--sample-seconds` it reads the server's resident set size from `/proc/PID/status`.
"Start" is the first sample after the first minute (imports, caches and pools warmed up);
"end" is the last one. The queue backlog is whatever the worker had not synced yet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _engine_workload import SECRET
from bench_engine import StandIn, machine, until
from ghlsync.sandbox import DEFAULT_CALENDAR_ID, DEFAULT_LOCATION_ID, DEFAULT_TOKEN

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
WARM_SECONDS = 60.0


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MB (VmRSS)."""
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(found[1]) / 1024 if found else float("nan")


@contextlib.contextmanager
def serve(db: Path, ghl_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`ghlsync serve` (receiver + worker) in a subprocess, until the block ends."""
    env = dict(
        os.environ,
        GHLSYNC_DATABASE_URL=f"sqlite:///{db}",
        GHLSYNC_DRIPJOBS_SECRET=SECRET,
        GHLSYNC_GHL_LOCATION_ID=DEFAULT_LOCATION_ID,
        GHLSYNC_GHL_CALENDAR_ID=DEFAULT_CALENDAR_ID,
        GHLSYNC_GHL_TOKEN=DEFAULT_TOKEN,
        GHLSYNC_GHL_BASE_URL=ghl_url,
    )
    env.pop("GHLSYNC_CONFIG", None)
    cmd = [sys.executable, "-c", "from ghlsync.cli import main; main()", "serve"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=db.parent)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    import httpx2

    async def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"ghlsync serve exited with {proc.returncode}")
        with contextlib.suppress(httpx2.TransportError):
            async with httpx2.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        return False

    deadline = time.monotonic() + 60
    while not await up():
        if time.monotonic() > deadline:
            raise RuntimeError("ghlsync serve did not become healthy")
        await asyncio.sleep(0.2)


def queue_counts(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT status, count(*) FROM work_items GROUP BY status").fetchall()
    return {str(status): int(n) for status, n in rows}


async def soak(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    db, port = workdir / "soak.db", free_port()
    count = round(args.rate * args.minutes * 60)
    samples: list[tuple[float, float]] = []
    async with StandIn(workdir) as ghl:
        with serve(db, ghl.url, port) as proc:
            await healthy(port, proc)
            load_cmd = [
                sys.executable,
                str(Path(__file__).with_name("_engine_workload.py")),
                f"http://127.0.0.1:{port}",
                str(workdir / "load.json"),
                *("--count", str(count), "--pool", "10", "--tag", "soak", "--mix", "new"),
                *("--rate", str(args.rate)),
            ]
            started = time.monotonic()
            loader = await asyncio.create_subprocess_exec(*load_cmd)
            while loader.returncode is None:
                samples.append((time.monotonic() - started, rss_mb(proc.pid)))
                print(f"{samples[-1][0]:6.0f} s  RSS {samples[-1][1]:.1f} MB", flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(loader.wait(), args.sample_seconds)
            samples.append((time.monotonic() - started, rss_mb(proc.pid)))
            rows = json.loads((workdir / "load.json").read_text())
            queue = queue_counts(db)
            await until(lambda: True, 1)
    warm = [s for s in samples if s[0] >= min(WARM_SECONDS, samples[-1][0] / 2)]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[str(row[3])] = statuses.get(str(row[3]), 0) + 1
    span = max(r[1] for r in rows) - min(r[1] for r in rows)
    return {
        "sent": len(rows),
        "rate": (len(rows) - 1) / span if span else 0.0,
        "seconds": samples[-1][0],
        "answers": statuses,
        "rss_start": warm[0][1],
        "rss_end": samples[-1][1],
        "rss_max": max(mb for _, mb in warm),
        "rss_first": samples[0][1],
        "synced": queue.get("done", 0),
        "backlog": queue.get("pending", 0) + queue.get("leased", 0),
        "dead": queue.get("dead", 0),
        "samples": samples,
    }


def report(result: dict[str, object], args: argparse.Namespace, load: tuple[float, ...]) -> str:
    loads = ", ".join(f"{x:.1f}" for x in load)
    return "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; `python "
            f"bench/bench_soak.py --minutes {args.minutes:g} --rate {args.rate:g}`; load "
            f"average before the run {loads}.",
            "",
            "| sent | at | answers | RSS start (after 1 min) | RSS end | RSS max | synced "
            "| backlog at end | dead letters |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
            f"| {result['sent']:,} | {result['rate']:.0f}/s for {result['seconds']:.0f} s "
            f"| {result['answers']} | {result['rss_start']:.1f} MB | {result['rss_end']:.1f} MB "
            f"| {result['rss_max']:.1f} MB | {result['synced']:,} | {result['backlog']:,} "
            f"| {result['dead']} |",
        ]
    )


def write_section(text: str) -> None:
    begin, end = "<!-- soak:run -->", "<!-- /soak:run -->"
    existing = DOCS.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin in existing and end in existing:
        new = re.sub(
            re.escape(begin) + ".*?" + re.escape(end), lambda _: block, existing, flags=re.S
        )
    else:
        new = f"{existing.rstrip()}\n\n## Soak\n\n{block}\n"
    DOCS.write_text(new)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ghlsync-soak-") as tmp:
        result = asyncio.run(soak(args, Path(tmp)))
    text = report(result, args, load)
    print(text)
    print("RSS samples (s, MB):", [(round(t), round(mb, 1)) for t, mb in result["samples"]])  # type: ignore[attr-defined]
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
