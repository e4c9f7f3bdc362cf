"""Backfill benchmark: a 100,000-row DripJobs export through `ghlsync backfill`, against a
sandbox with a fast emulated rate limit.

    python bench/bench_backfill.py [--rows 100000] [--burst 100] [--interval-ms 5000]
                                   [--existing 0.05]

The sandbox runs in this process (a uvicorn thread) with a limit of `--burst` calls per
`--interval-ms` window (`X-RateLimit-*` headers say so; past it, 429). The default is GHL's
own shape, 100 calls per window, with the 10 s window halved to 5 s (20 calls/s). The limiter
mirrors the window (docs/rate-limits.md): each call's slot frees one interval after its
answer, so what a run loses per window is about one call's round trip.

`ghlsync backfill FILE --json` runs as a child process exactly as a user runs it (SQLite
store, its own worker, the shared `SqlRateLimiter`), so its peak RSS is its own:
`getrusage(RUSAGE_CHILDREN).ru_maxrss` after it exits. `--existing` of the customers are in
GHL before (by email): they are matched and linked, the rest created.

The limit makes a minimum: a fresh window lets `--burst` calls go at once and `--burst` more
every `--interval-ms`, so C calls need at least `(ceil(C / burst) - 1) × interval`. The result
is the wall time of the whole command (start-up included) and the sandbox's first-to-last call
against that minimum (the target: within 3%), the peak RSS (target: < 200 MB), calls per row
and 429s, and a check of the end state (one contact per customer, no duplicates).

The sandbox's contact search is a linear scan (fine for tests); with 100,000 contacts that
scan, not ghlsync, would be the bottleneck, so this benchmark answers the email/phone
lookups the backfill sends from the sandbox's own duplicate index (same results).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from ghlsync.cli import main; main()", "backfill"]


def indexed_search() -> None:
    """Answer email/phone `eq` searches from the sandbox's duplicate index (see above)."""
    from ghlsync.sandbox import _search

    linear = _search.search

    def search(location: Any, body: Any) -> dict[str, Any]:
        keys = _eq_keys(body.filters or [])
        if keys is None or body.query or body.searchAfter:
            return linear(location, body)
        ids: list[str] = []
        for key in keys:
            for cid in location.contact_index.get(key, []):
                if cid not in ids:
                    ids.append(cid)
        found = [location.contacts[i] for i in ids][: body.pageLimit]
        return {"contacts": [_search.search_view(c) for c in found], "total": len(found)}

    _search.search = search


def _eq_keys(filters: list[dict[str, Any]]) -> list[tuple[str, str]] | None:
    """The (field, value) keys of an OR group of email/phone `eq` filters, else None."""
    if len(filters) != 1 or str(filters[0].get("group", "")).upper() != "OR":
        return None
    keys = []
    for f in filters[0].get("filters", []):
        if f.get("operator") != "eq" or f.get("field") not in ("email", "phone"):
            return None
        value = str(f["value"])
        keys.append((f["field"], value.lower() if f["field"] == "email" else value))
    return keys


def write_export(path: Path, rows: int) -> None:
    """`rows` customers, written streaming (the file itself is ~8 MB per 100,000 rows)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Customer ID", "Customer Name", "Email Address", "Phone Number", "City"])
        for i in range(1, rows + 1):
            phone = f"(512) {200 + i // 10000:03d}-{i % 10000:04d}"
            writer.writerow([f"dj{i}", f"Pat Customer{i}", f"pat{i}@example.com", phone, "Austin"])


def seed(state: Any, location_id: str, count: int, step: int) -> None:
    """`count` customers already in GHL (every `step`-th one), by email."""
    from ghlsync.sandbox._contacts import create

    location = state.locations[location_id]
    with state.lock:
        for n in range(count):
            i = 1 + n * step
            create(state, location, {"email": f"pat{i}@example.com", "firstName": "Old"})


def config_file(path: Path, args: argparse.Namespace) -> Path:
    from ghlsync.mapping._load import preset_text

    raw = yaml.safe_load(preset_text())
    raw["backfill"] = {"window": args.window, "batch": args.batch}
    raw["worker"] = {**raw.get("worker", {}), "concurrency": args.concurrency}
    path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ghlsync.sandbox import SandboxServer

    indexed_search()
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        folder = Path(tmp)
        export = folder / "customers.csv"
        write_export(export, args.rows)
        existing = int(args.rows * args.existing)
        # GHL's daily limit (200,000) is below what 100,000 new customers need (~2 calls
        # each); the limiter then stops claiming at its daily reserve, so lift it here.
        server = SandboxServer(
            burst=args.burst, interval_ms=args.interval_ms, daily=100_000_000
        ).start()
        try:
            seed(server.state, server.location_id, existing, max(1, args.rows // max(existing, 1)))
            before = len(server.state.requests)
            env = {
                **os.environ,
                "GHLSYNC_CONFIG": str(config_file(folder / "ghlsync.yaml", args)),
                "GHLSYNC_DATABASE_URL": f"sqlite:///{folder / 'ghlsync.db'}",
                "GHLSYNC_GHL_BASE_URL": server.url,
                "GHLSYNC_GHL_LOCATION_ID": server.location_id,
                "GHLSYNC_GHL_TOKEN": server.token,
                "GHLSYNC_GHL_CALENDAR_ID": server.calendar_id,
            }
            started = time.monotonic()
            done = subprocess.run(
                [*CLI, str(export), "--json"], cwd=ROOT, env=env, capture_output=True
            )
            seconds = time.monotonic() - started
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if done.returncode != 0:
                sys.stderr.write(done.stderr.decode()[-3000:])
                raise SystemExit(f"backfill exited {done.returncode}")
            summary = json.loads(done.stdout)
            log = server.state.requests[before:]
            contacts = server.state.locations[server.location_id].contacts
            emails = [c.get("email") for c in contacts.values()]
        finally:
            server.stop()
    calls = len(log)
    rate = args.burst * 1000 / args.interval_ms
    # A fresh window lets `burst` calls go at once, then `burst` more each interval: the last
    # call can go no sooner than ceil(calls / burst) - 1 whole intervals after the first.
    minimum = (math.ceil(calls / args.burst) - 1) * args.interval_ms / 1000
    times = sorted(r["time"] for r in log)
    span = times[-1] - times[0] if times else 0.0
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "rows": args.rows,
        "existing": existing,
        "limit": f"{args.burst} per {args.interval_ms} ms",
        "rate_per_s": round(rate, 2),
        "window_batch_concurrency": [args.window, args.batch, args.concurrency],
        "calls": calls,
        "calls_per_row": round(calls / args.rows, 3),
        "throttled_429": sum(1 for r in log if r["status"] == 429),
        "seconds": round(seconds, 1),
        "minimum_seconds": round(minimum, 1),
        "over_minimum_pct": round(100 * (seconds / minimum - 1), 2) if minimum else None,
        "first_to_last_call_seconds": round(span, 1),
        "calls_per_window": _per_window(times, args.interval_ms / 1000),
        "calls_over_minimum_pct": round(100 * (span / minimum - 1), 2) if minimum else None,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "summary_counts": summary["counts"],
        "contacts": len(emails),
        "duplicate_contacts": len(emails) - len(set(emails)),
    }


def _per_window(times: list[float], interval: float) -> list[int]:
    """Calls in each interval from the first call: a full window holds `--burst`; fewer means
    the run did not keep the limiter busy (CPU, pipeline) rather than the limit holding it."""
    counts: list[int] = []
    for t in times:
        slot = int((t - times[0]) // interval)
        counts.extend([0] * (slot + 1 - len(counts)))
        counts[slot] += 1
    return counts


def _machine() -> str:
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load:.1f} at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=100, help="emulated limit, calls/window")
    parser.add_argument("--interval-ms", type=int, default=5000, help="emulated window, ms")
    parser.add_argument("--existing", type=float, default=0.05, help="share already in GHL")
    parser.add_argument("--window", type=int, default=32, help="backfill.window")
    parser.add_argument("--batch", type=int, default=16, help="backfill.batch")
    parser.add_argument("--concurrency", type=int, default=16, help="worker.concurrency")
    result = run(parser.parse_args())
    print(json.dumps(result, indent=2))
    ok = result["duplicate_contacts"] == 0 and result["contacts"] == result["rows"]
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
