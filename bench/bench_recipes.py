"""Recipes benchmarks: GHL calls per recipe step, timer precision, and what pending timers cost
the claim.

    python bench/bench_recipes.py [--db sqlite|postgresql] [--leads 50] [--timers 10000]

- **calls per step**: `--leads` leads, each starting the onboarding recipe (two tasks, a
  tag, a workflow enrolment by name) through the real worker and flows against the sandbox
  in-process (GHL's limits lifted); the GHL calls of the recipe steps (from the audit log)
  per step run; then every recipe run is run again (as a retry or a replayed dead letter
  would): its calls per step.
- **timer precision**: `--timers` recipe timers waiting a day, plus 20 due 1.5 to 4 s from
  now; the real `Worker.run` on the wall clock; per due timer, the time from its due moment
  to its GHL call (the sandbox's request log). Target: every one within 1 s.
- **claim cost**: the median time of `claim(limit=16)` (then released) on one store with
  2,000 due items: without timers, with `--timers` waiting timers, and without them again;
  the ratio is the loaded median over the mean of the two baselines. On PostgreSQL `ANALYZE`
  runs after each change of the table (as autovacuum would), so each plan sees current
  statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync.dripjobs import fold_keys
from ghlsync.engine import Delivery, Worker, accept, claim, release
from ghlsync.engine.flows.recipes._run import RunInput
from ghlsync.engine.flows.recipes._schedule import run_key
from ghlsync.engine.queue._codec import dump_events, dumps
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.sandbox import SandboxState, create_app
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import audit_log, work_items

LOCATION, TOKEN = "loc_sandbox", "sandbox-token"
BASE = "https://services.leadconnectorhq.com"
ONBOARDING: dict[str, Any] = {
    "name": "onboarding",
    "when": {"trigger": "dripjobs.lead.created"},
    "do": [
        {"create_task": {"title": "Call {first_name}", "due": "+0d +5m"}},
        {"create_task": {"title": "Send estimate", "due": "+1d 09:00"}},
        {"add_tags": ["new-lead"]},
        {"add_to_workflow": {"workflow": "New lead nurture"}},
    ],
}
TIMER: dict[str, Any] = {
    "name": "timer",
    "when": {"trigger": "dripjobs.task.completed"},
    "do": [{"add_tags": ["reminded"]}],
    "after": {"wait": "1d"},
}


@contextmanager
def store(kind: str) -> Iterator[sa.Engine]:
    """A fresh migrated store: a SQLite file, or a PostgreSQL database made for the run."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-recipes-") as tmp:
            engine = create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            migrate(engine)
            yield engine
            engine.dispose()
        return
    admin_url = os.environ.get(
        "GHLSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_recipes_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(sa.make_url(admin_url).set(database=name).render_as_string(False))
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sandbox() -> tuple[SandboxState, httpx2.ASGITransport]:
    state = SandboxState(burst=10**9, interval_ms=1000, daily=10**9)
    return state, httpx2.ASGITransport(app=create_app(state))


def client(transport: httpx2.AsyncBaseTransport) -> GHLClient:
    return GHLClient(base_url=BASE, tokens=StaticTokens({LOCATION: TOKEN}), transport=transport)


def deliver(engine: sa.Engine, config: AppConfig, n: int, event: str, **payload: Any) -> None:
    key = Mapper(config).entity_key(event, payload)
    delivery = Delivery(
        connection_id="bench",
        location_id=LOCATION,
        event=event,
        delivery_id=f"{event}-{n}",
        payload=fold_keys(payload),
        entity_type=key.type,
        source_id=key.source_id,
        source_updated_at=None,
        received_at=time.time() - 1,
    )
    with begin_immediate(engine) as conn:
        accept(conn, delivery)


async def drain(worker: Worker) -> None:
    while await worker.run_once():
        pass


def step_calls(engine: sa.Engine) -> tuple[int, int]:
    """(step runs, GHL calls) of recipe steps in the audit log."""
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(audit_log.c.calls), 0)).where(
        audit_log.c.entity_type == "recipe_step"
    )
    with engine.connect() as conn:
        runs, calls = conn.execute(query).one()
    return int(runs), int(calls)


async def calls_per_step(kind: str, leads: int) -> dict[str, float]:
    config = AppConfig.default().model_copy(update={"recipes": [ONBOARDING]})
    _state, transport = sandbox()
    with store(kind) as engine:
        async with client(transport) as ghl:
            worker = Worker(engine, ghl, Mapper(config), config, outbox=None, concurrency=16)
            for n in range(leads):
                person = {"customer_id": f"C{n}", "first_name": f"P{n}"}
                deliver(engine, config, n, "lead.created", **person, email=f"p{n}@x.io")
            await drain(worker)
            runs, calls = step_calls(engine)
            with begin_immediate(engine) as conn:  # every run again: a retry or a replay
                conn.execute(
                    sa.update(work_items)
                    .where(work_items.c.entity_type == "recipe")
                    .values(status="pending", available_at=time.time() - 1)
                )
            await drain(worker)
            runs2, calls2 = step_calls(engine)
    return {
        "steps": runs,
        "calls": calls,
        "per_step": calls / runs,
        "lookups": calls - runs,
        "retry_steps": runs2 - runs,
        "retry_calls": calls2 - calls,
    }


def add_timers(engine: sa.Engine, count: int, due: float, contact: str, tag: str) -> None:
    now = time.time()
    rows = []
    for n in range(count):
        run = RunInput("timer", "dripjobs.task.completed", f"{tag}-{n}", None, contact, {}, due)
        rows.append(
            {
                "location_id": LOCATION,
                "entity_type": "recipe",
                "source_id": run_key("timer", contact, f"{tag}-{n}"),
                "status": "pending",
                "generation": 1,
                "available_at": due + (n * 0.125 if count <= 100 else 0.0),
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "event": "dripjobs.task.completed",
                "events": dump_events((("dripjobs.task.completed", 0),)),
                "payload": dumps(run.to_payload()),
                "stamps": "{}",
                "source_updated_at": None,
            }
        )
    with begin_immediate(engine) as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(sa.insert(work_items), rows[start : start + 1000])


async def timer_precision(kind: str, timers: int) -> dict[str, float]:
    config = AppConfig.default().model_copy(update={"recipes": [TIMER]})
    state, transport = sandbox()
    with store(kind) as engine:
        async with client(transport) as ghl:
            answer = await ghl.request(
                "POST",
                "/contacts/upsert",
                key=LOCATION,
                version="2021-07-28",
                json={"locationId": LOCATION, "email": "t@x.io"},
            )
            contact = answer["contact"]["id"]
            add_timers(engine, timers, time.time() + 86400, contact, "far")
            due = time.time() + 1.5
            add_timers(engine, 20, due, contact, "near")
            dues = sorted(due + n * 0.125 for n in range(20))
            worker = Worker(engine, ghl, Mapper(config), config, outbox=None, clock=SYSTEM_CLOCK)
            stop = asyncio.Event()
            task = asyncio.ensure_future(worker.run(stop))
            mono0 = time.monotonic()
            while sum(1 for r in list(state.requests) if r["path"].endswith("/tags")) < 20:
                if time.monotonic() - mono0 > 60:
                    raise SystemExit("timers did not fire within 60 s")
                await asyncio.sleep(0.02)
            stop.set()
            await task
    fired = sorted(r["time"] for r in list(state.requests) if r["path"].endswith("/tags"))
    late = [f - d for f, d in zip(fired, dues, strict=True)]
    return {"p50": statistics.median(late), "max": max(late), "min": min(late)}


def claim_cost(kind: str, timers: int, rounds: int = 200) -> dict[str, float]:
    """Median claim time on one store: without timers, with them, without them again (the
    two baselines bracket the loaded run, so drift in machine load shows)."""
    results = {}
    with store(kind) as engine:
        now = time.time()
        add_due(engine, 2000, now - 10)
        analyze(engine)
        for label in ("before", "loaded", "after"):
            if label == "loaded":
                add_timers(engine, timers, now + 86400, "c1", "far")
                analyze(engine)  # as autovacuum would soon: plans from current statistics
            if label == "after":
                with begin_immediate(engine) as conn:
                    conn.execute(sa.delete(work_items).where(work_items.c.entity_type == "recipe"))
                analyze(engine)
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                got = claim(engine, "bench", None, 16, 60.0)
                samples.append(time.perf_counter() - start)
                release(engine, got)
            results[label] = statistics.median(samples) * 1000
    return results


def analyze(engine: sa.Engine) -> None:
    """PostgreSQL: refresh the planner's statistics, as autovacuum soon would. SQLite keeps
    none unless asked (and with `ANALYZE` statistics, its plan for the claim with 2,000 due
    rows and no timers got 3-4x slower here), so it runs as deployed: without."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def add_due(engine: sa.Engine, count: int, at: float) -> None:
    rows = [
        {
            "location_id": LOCATION,
            "entity_type": "contact",
            "source_id": f"C{n}",
            "status": "pending",
            "generation": 1,
            "available_at": at,
            "attempts": 0,
            "created_at": at,
            "updated_at": at,
            "event": "customer.updated",
            "events": dump_events((("customer.updated", 0),)),
            "payload": "{}",
            "stamps": "{}",
            "source_updated_at": None,
        }
        for n in range(count)
    ]
    with begin_immediate(engine) as conn:
        conn.execute(sa.insert(work_items), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--leads", type=int, default=50)
    parser.add_argument("--timers", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, db {args.db}")  # fmt: skip
    calls = asyncio.run(calls_per_step(args.db, args.leads))
    print(
        f"calls per step: {calls['steps']} step runs, {calls['calls']} GHL calls "
        f"({calls['per_step']:.3f} per step; {calls['lookups']} by-name lookup); retry of every "
        f"run: {calls['retry_steps']} step runs, {calls['retry_calls']} calls"
    )
    timing = asyncio.run(timer_precision(args.db, args.timers))
    print(
        f"timer precision with {args.timers} waiting: late by p50 {timing['p50'] * 1000:.0f} ms,"
        f" max {timing['max'] * 1000:.0f} ms, min {timing['min'] * 1000:.0f} ms (20 timers)"
    )
    cost = claim_cost(args.db, args.timers)
    base = (cost["before"] + cost["after"]) / 2
    print(
        f"claim(16) median: {cost['before']:.2f} ms without timers, {cost['loaded']:.2f} ms "
        f"with {args.timers}, {cost['after']:.2f} ms without again (ratio "
        f"{cost['loaded'] / base:.2f}); load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
