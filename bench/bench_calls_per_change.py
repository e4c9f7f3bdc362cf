"""GHL calls per real change: ghlsync's pipeline against the naive "search, then write" flow.

    python bench/bench_calls_per_change.py                      # 300 customers, SQLite + PG
    python bench/bench_calls_per_change.py --customers 50 --db sqlite --no-write

One trace (`bench/_trace.py`: exactly 30% no-op updates and 10% duplicate deliveries) runs
through each contender against its own fresh in-process sandbox (GHL's limits lifted, so
pacing plays no part; a 429 would still be counted):

- ghlsync, *live*: each delivery is `accept`ed into a fresh store and the real `Worker` drains
  the queue before the next one arrives, so nothing merges in the queue: the strict case.
- ghlsync, *backlog*: every delivery is accepted first, then the worker drains the queue (what
  happens after an outage, or when deliveries outpace the worker): repeated events merge.
- naive (`bench/_naive.py`): search by email, then create or update, for every delivery.

The denominator is the trace's real changes, counted on a model of GHL state from the mapper's
output (`GhlModel`); both sandboxes must end equal to that model, or the run fails loudly.
With `--write` (the default) the figures go into docs/benchmarks.md under "Calls per change".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _naive import NaiveFlow
from _trace import (
    Snapshot,
    Trace,
    build_trace,
    counts,
    diff_snapshots,
    iter_changes,
    model_snapshot,
    replay_model,
    sandbox_snapshot,
)
from ghlsync.dripjobs import fold_keys
from ghlsync.engine import Delivery, Worker, accept
from ghlsync.ghl import GHLClient, StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.sandbox import (
    DEFAULT_CALENDAR_ID,
    DEFAULT_LOCATION_ID,
    DEFAULT_TOKEN,
    SandboxState,
    create_app,
)
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import dead_letters, work_items

GHL_URL = "https://services.leadconnectorhq.com"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- calls:run -->", "<!-- /calls:run -->"
TARGET_GHLSYNC, TARGET_NAIVE = 1.05, 2.0
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_ROUTE_WORDS = {
    "contacts", "search", "duplicate", "upsert", "tags", "tasks", "notes", "completed",
    "calendars", "events", "appointments", "locations", "customFields", "",
}  # fmt: skip


@dataclass
class RunResult:
    """What one contender did: GHL calls (by route), 429s, the final state, the time taken."""

    name: str
    calls: int
    throttled: int
    routes: Counter[str]
    snapshot: Snapshot
    seconds: float
    dead: int = 0
    problems: list[str] = field(default_factory=list)

    def per_change(self, changes: int) -> float:
        return self.calls / changes


def route(path: str) -> str:
    """`/contacts/abc123/tasks` → `/contacts/{id}/tasks`: ids folded so calls group by route."""
    return "/".join(p if p in _ROUTE_WORDS else "{id}" for p in path.split("/"))


def bench_config() -> AppConfig:
    """The embedded preset, pointed at the sandbox's location and calendar."""
    config = AppConfig.default()
    ghl = config.ghl.model_copy(
        update={"location_id": DEFAULT_LOCATION_ID, "calendar_id": DEFAULT_CALENDAR_ID}
    )
    return config.model_copy(update={"ghl": ghl})


def fresh_sandbox() -> tuple[SandboxState, GHLClient]:
    """A new in-process sandbox with GHL's limits lifted, and a client talking to it."""
    state = SandboxState(burst=10**9, interval_ms=1000, daily=10**9)
    client = GHLClient(
        base_url=GHL_URL,
        tokens=StaticTokens({DEFAULT_LOCATION_ID: DEFAULT_TOKEN}),
        transport=httpx2.ASGITransport(app=create_app(state)),
    )
    return state, client


def result_of(name: str, state: SandboxState, seconds: float) -> RunResult:
    log = state.requests
    location = state.location(DEFAULT_LOCATION_ID)
    assert location is not None
    return RunResult(
        name=name,
        calls=len(log),
        throttled=sum(1 for r in log if r["status"] == 429),
        routes=Counter(f"{r['method']} {route(r['path'])}" for r in log),
        snapshot=sandbox_snapshot(location),
        seconds=seconds,
    )


async def run_naive(trace: Trace, mapper: Mapper) -> RunResult:
    """Every delivery through the naive flow (duplicates included: it cannot tell)."""
    state, client = fresh_sandbox()
    flow = NaiveFlow(client, mapper, DEFAULT_LOCATION_ID, DEFAULT_CALENDAR_ID)
    started = time.perf_counter()
    async with client:
        for item in trace.deliveries:
            await flow.handle(item.event, item.payload)
    return result_of("naive", state, time.perf_counter() - started)


def to_delivery(mapper: Mapper, event: str, payload: dict[str, Any], delivery_id: str) -> Delivery:
    """What the receiver would build from this Zap POST."""
    folded = fold_keys(payload)
    key = mapper.entity_key(event, folded)
    updated_at = mapper.source_updated_at(event, folded)
    return Delivery(
        connection_id="bench",
        location_id=DEFAULT_LOCATION_ID,
        event=event,
        delivery_id=delivery_id,
        payload=folded,
        entity_type=key.type,
        source_id=key.source_id,
        source_updated_at=None if updated_at is None else updated_at.timestamp(),
        received_at=time.time(),
        action=mapper.config.events[event].action,
    )


def open_work(engine: sa.Engine) -> int:
    """Work rows still to do (pending, or leased by a worker)."""
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(work_items.c.status.in_(["pending", "leased"]))
        return int(conn.execute(query).scalar_one())


async def drain(worker: Worker, engine: sa.Engine) -> None:
    """Run the worker until the queue is empty (waiting out any backoff; 2 minutes at most)."""
    async with asyncio.timeout(120):
        while True:
            if await worker.run_once() > 0:
                continue
            if open_work(engine) == 0:
                return
            await asyncio.sleep(0.05)  # work is left but not due yet: let its backoff pass


async def run_ghlsync(
    trace: Trace,
    mapper: Mapper,
    database_url: str,
    *,
    live: bool,
    label: str,
    concurrency: int = 8,
) -> RunResult:
    """The trace through `accept` and the real `Worker`, against a fresh sandbox."""
    engine = create_engine(database_url)
    migrate(engine)
    state, client = fresh_sandbox()
    worker = Worker(engine, client, mapper, mapper.config, concurrency=concurrency)
    started = time.perf_counter()
    async with client:
        for item in trace.deliveries:
            with begin_immediate(engine) as conn:
                accept(conn, to_delivery(mapper, item.event, item.payload, item.delivery_id))
            if live:
                await drain(worker, engine)
        await drain(worker, engine)
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        dead = int(conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one())
    engine.dispose()
    result = result_of(label, state, seconds)
    result.dead = dead
    return result


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL of `kind` (a PostgreSQL database is dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin_url = os.environ.get("GHLSYNC_BENCH_POSTGRES_URL", DEFAULT_PG)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"ghlsync_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_reachable() -> str | None:
    """None if the bench's PostgreSQL answers, else why not."""
    url = os.environ.get("GHLSYNC_BENCH_POSTGRES_URL", DEFAULT_PG)
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no server here"
        return f"{exc.__class__.__name__}"
    return None


def machine() -> str:
    """`N cores, <model name>` from nproc and /proc/cpuinfo."""
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{cores} cores, {model}"


def check_states(results: list[RunResult], expected: Snapshot) -> None:
    """Each final GHL state must equal the model's and the naive run's; kept per result."""
    naive = next((r for r in results if r.name == "naive"), None)
    for result in results:
        result.problems = [f"vs model: {p}" for p in diff_snapshots(expected, result.snapshot)]
        if naive is not None and result is not naive:
            vs_naive = diff_snapshots(naive.snapshot, result.snapshot)
            result.problems += [f"vs naive: {p}" for p in vs_naive]


def table(results: list[RunResult], changes: int) -> list[str]:
    """The figures as a Markdown table."""
    lines = [
        "| contender | GHL calls | real changes | calls per change | 429s | dead letters "
        "| end state | time |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        same = "= model" if r.name == "naive" else "= model, = naive"
        state = same if not r.problems else f"**{len(r.problems)} mismatches**"
        lines.append(
            f"| {r.name} | {r.calls:,} | {changes:,} | {r.per_change(changes):.3f} "
            f"| {r.throttled} | {r.dead} | {state} | {r.seconds:.1f} s |"
        )
    return lines


def route_table(results: list[RunResult]) -> list[str]:
    """Calls by method and route, one column per contender."""
    routes = sorted(set().union(*(r.routes for r in results)))
    lines = ["| call | " + " | ".join(r.name for r in results) + " |"]
    lines.append("|---|" + "---:|" * len(results))
    for key in routes:
        cells = " | ".join(f"{r.routes.get(key, 0):,}" for r in results)
        lines.append(f"| `{key}` | {cells} |")
    return lines


def changes_by_event(trace: Trace, mapper: Mapper) -> str:
    """`lead.created 300, ...`: where the real changes come from."""
    by_event: Counter[str] = Counter()
    for delivery, changed in iter_changes(trace, mapper):
        by_event[delivery.event] += changed
    return ", ".join(f"`{e}` {n:,}" for e, n in by_event.most_common() if n)


def trace_summary(trace: Trace, changes: int, customers: int) -> str:
    total = len(trace.deliveries)
    noop, dup = trace.count("noop"), trace.count("duplicate")
    return (
        f"Trace: {customers} customers, {total:,} deliveries: {trace.count('real'):,} real "
        f"({changes:,} real changes), {noop:,} no-op updates ({noop / total:.1%}), "
        f"{dup:,} duplicate deliveries ({dup / total:.1%})."
    )


def verdict(results: list[RunResult], changes: int) -> list[str]:
    """One line per contender: target met or missed."""
    out = []
    for r in results:
        target = TARGET_NAIVE if r.name == "naive" else TARGET_GHLSYNC
        ratio = r.per_change(changes)
        ok = ratio >= target if r.name == "naive" else ratio <= target
        sign = "≥" if r.name == "naive" else "≤"
        out.append(
            f"{r.name}: {ratio:.3f} calls per change, target {sign} {target}: "
            f"{'met' if ok else 'MISSED'}"
        )
    return out


def write_docs(block: list[str]) -> None:
    """Replace the run block in docs/benchmarks.md (the section's prose stays as written)."""
    text = DOCS.read_text()
    new = "\n".join([BEGIN, *block, END])
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: new, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## Calls per change\n\n" + new + "\n"
    DOCS.write_text(text)


async def main(args: argparse.Namespace) -> int:
    config = bench_config()
    mapper = Mapper(config)
    trace = build_trace(args.customers, seed=args.seed)
    model, changes = replay_model(trace, mapper)
    expected = model_snapshot(model)
    print(trace_summary(trace, changes, args.customers))
    kinds = args.db or ["sqlite", "postgresql"]
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="ghlsync-bench-") as tmp:
        for kind in kinds:
            if kind == "postgresql" and (why := postgres_reachable()) is not None:
                print(f"PostgreSQL not reachable ({why}): skipped")
                continue
            for live in (True, False):
                label = f"ghlsync {kind} {'live' if live else 'backlog'}"
                print(f"running {label} ...", flush=True)
                with database(kind, Path(tmp)) as url:
                    results.append(
                        await run_ghlsync(
                            trace,
                            mapper,
                            url,
                            live=live,
                            label=label,
                            concurrency=args.concurrency,
                        )
                    )
    print("running naive ...", flush=True)
    results.append(await run_naive(trace, mapper))
    check_states(results, expected)
    by_event = changes_by_event(trace, mapper)
    return report(args, trace, changes, results, expected, by_event)


def report(
    args: argparse.Namespace,
    trace: Trace,
    changes: int,
    results: list[RunResult],
    expected: Snapshot,
    by_event: str,
) -> int:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = [
        f"Run {when} on {machine()}; `python bench/bench_calls_per_change.py "
        f"--customers {args.customers}`.",
        "",
        trace_summary(trace, changes, args.customers)
        + " Expected end state: "
        + ", ".join(f"{v:,} {k}" for k, v in counts(expected).items())
        + ".",
        "",
        f"Real changes by event: {by_event}.",
        "",
        *table(results, changes),
        "",
        *[f"- {line}" for line in verdict(results, changes)],
        "",
        "GHL calls by route:",
        "",
        *route_table(results),
    ]
    print("\n".join(block))
    failed = False
    for r in results:
        if r.problems:
            failed = True
            print(f"\n!!! END STATE MISMATCH: {r.name} differs from the model:", file=sys.stderr)
            for line in r.problems:
                print(f"!!!   {line}", file=sys.stderr)
    if args.write:
        write_docs(block)
        print(f"\nwritten to {DOCS}")
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--concurrency", type=int, default=8, help="the worker's concurrency")
    parser.add_argument(
        "--db", action="append", choices=["sqlite", "postgresql"],
        help="store(s) to run ghlsync on (repeatable; default: SQLite, and PostgreSQL if "
        "reachable at $GHLSYNC_BENCH_POSTGRES_URL)",
    )  # fmt: skip
    parser.add_argument("--no-write", dest="write", action="store_false",
                        help="do not update docs/benchmarks.md")  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
