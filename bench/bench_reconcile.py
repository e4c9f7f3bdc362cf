"""Reconcile benchmark: one sweep over 10,000 GHL contacts at GHL's rate limit.

    python bench/bench_reconcile.py [--contacts 10000] [--budget 0.1] [--drift 50]
                                    [--children 0] [--burst 100]

A sandbox (uvicorn thread, `--burst` requests per 10 s; GHL's real limit is 100) holds
`--contacts` contacts that the store maps (id map and last-synced snapshots written straight
into a SQLite store), with `--drift` of them edited in GHL behind ghlsync's back and as many
deleted; the first `--children` contacts also have one task each, a tenth of them deleted in
GHL. `Sweep.run()` walks them through the real GHL client and `SqlRateLimiter`. Reported:
calls (search pages, deletion GETs, child lists), wall time, the minimum time the budget
allows for those calls (the baseline: calls / (limit x budget)) and the ratio to it, the share
of the location's rate budget the sweep used (calls / (limit x time)), and the drift found
(it must equal what was injected).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def seed(state: Any, location_id: str, engine: sa.Engine, count: int) -> list[str]:
    """`count` contacts in GHL and in the store, as if ghlsync had created them."""
    from ghlsync.sandbox._contacts import create
    from ghlsync.store._tables_sync import id_map, sync_state

    location = state.locations[location_id]
    ids, maps, states = [], [], []
    with state.lock:
        for i in range(count):
            body = {"firstName": f"P{i}", "email": f"p{i}@example.com", "city": "Austin"}
            contact = create(state, location, dict(body))
            ids.append(contact["id"])
            maps.append(
                {
                    "location_id": location_id,
                    "entity_type": "contact",
                    "source_id": f"dj{i}",
                    "ghl_id": contact["id"],
                    "state": "confirmed",
                    "updated_at": 1.0,
                }
            )
            states.append(
                {
                    "location_id": location_id,
                    "entity_type": "contact",
                    "source_id": f"dj{i}",
                    "side": "ghl",
                    "content_hash": "h",
                    "snapshot": json.dumps({"body": body}),
                    "synced_at": 1.0,
                }
            )
    with engine.begin() as conn:
        conn.execute(sa.insert(id_map), maps)
        conn.execute(sa.insert(sync_state), states)
    return ids


def seed_tasks(state: Any, location_id: str, engine: sa.Engine, ids: list[str]) -> list[str]:
    """One task per contact in `ids`, in GHL and mapped in the store; the task ids."""
    from ghlsync.store._tables_sync import id_map, sync_state

    location = state.locations[location_id]
    body = {"title": "Call", "dueDate": "2027-01-05T00:00:00Z", "completed": False}
    tasks, maps, states = [], [], []
    with state.lock:
        for n, contact in enumerate(ids):
            task = {"id": state.new_id(), "contactId": contact, **body}
            location.tasks[task["id"]] = task
            tasks.append(task["id"])
            key = {"location_id": location_id, "entity_type": "task", "source_id": f"t{n}"}
            maps.append({**key, "ghl_id": task["id"], "state": "confirmed", "updated_at": 1.0})
            snapshot = json.dumps({"body": body, "contact_id": contact})
            states.append(
                {**key, "side": "ghl", "content_hash": "h", "snapshot": snapshot, "synced_at": 1.0}
            )
    if maps:
        with engine.begin() as conn:
            conn.execute(sa.insert(id_map), maps)
            conn.execute(sa.insert(sync_state), states)
    return tasks


def drift(state: Any, location_id: str, ids: list[str], n: int) -> None:
    """`n` contacts edited and `n` deleted in GHL, no webhook to ghlsync."""
    from ghlsync.sandbox._contacts import delete

    location = state.locations[location_id]
    with state.lock:
        for cid in ids[:n]:
            location.contacts[cid]["city"] = "Boston"
        for cid in ids[n : 2 * n]:
            delete(state, location, location.contacts[cid])


async def sweep(url: str, engine: sa.Engine, location_id: str, token: str, budget: float) -> Any:
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.ghl._tokens import StaticTokens
    from ghlsync.reconcile import Sweep

    client = GHLClient(
        base_url=url, tokens=StaticTokens({location_id: token}), limiter=SqlRateLimiter(engine)
    )
    try:
        return await Sweep(engine, client, location_id, budget=budget).run()
    finally:
        await client.aclose()


def main() -> None:
    from ghlsync.sandbox import SandboxServer
    from ghlsync.store import create_engine, migrate

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--drift", type=int, default=50)
    parser.add_argument("--children", type=int, default=0, help="contacts with one task each")
    parser.add_argument("--burst", type=int, default=100, help="requests per 10 s")
    args = parser.parse_args()
    # Children go on contacts that are neither edited nor deleted, so each kind counts alone.
    with_tasks = slice(2 * args.drift, 2 * args.drift + args.children)
    tasks_gone = args.children // 10
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'ghlsync.db'}")
        migrate(engine)
        server = SandboxServer(burst=args.burst, interval_ms=10_000).start()
        try:
            ids = seed(server.state, server.location_id, engine, args.contacts)
            tasks = seed_tasks(server.state, server.location_id, engine, ids[with_tasks])
            drift(server.state, server.location_id, ids, args.drift)
            location = server.state.locations[server.location_id]
            for task in tasks[:tasks_gone]:
                del location.tasks[task]
            before = len(server.state.requests)
            started = time.monotonic()
            report = asyncio.run(
                sweep(server.url, engine, server.location_id, server.token, args.budget)
            )
            seconds = time.monotonic() - started
            log = server.state.requests[before:]
            calls = len(log)
        finally:
            server.stop()
            engine.dispose()
    rate = args.burst / 10.0
    minimum = calls / (rate * args.budget)
    kinds = {
        "search_pages": sum(1 for r in log if r["path"] == "/contacts/search"),
        "deletion_gets": sum(1 for r in log if r["path"].count("/") == 2 and r["method"] == "GET"),
        "child_lists": sum(1 for r in log if r["path"].endswith("/tasks")),
    }
    injected = {"changed_in_ghl": args.drift, "deleted_in_ghl": args.drift}
    if tasks_gone:
        injected["task_deleted_in_ghl"] = tasks_gone
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "contacts": args.contacts,
        "budget": args.budget,
        "children": args.children,
        "limit_per_10s": args.burst,
        "calls": calls,
        "calls_by_kind": kinds,
        "seconds": round(seconds, 1),
        "minimum_seconds_at_budget": round(minimum, 1),
        "ratio_to_minimum": round(seconds / minimum, 3) if minimum else None,
        "contacts_per_call": round(report.contacts_seen / max(calls, 1), 1),
        "budget_share_used": round(calls / (rate * seconds), 4),
        "drift_found": report.counts(),
        "drift_injected": injected,
    }
    print(json.dumps(result, indent=2))
    ok = result["drift_found"] == result["drift_injected"]
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
