"""Live webhooks go first during a backfill: `ghlsync backfill` (a real subprocess, its own
worker) imports a 200-customer export while live DripJobs webhooks arrive through the real
receiver (the app `ghlsync serve` runs, over HTTP) into the same store. Each live delivery is
synced after at most the `backfill.window` rows that were queued before it, never behind the
rest of the file (SQLite and PostgreSQL; completion order from the audit log)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ghlsync.demo import DemoEvent, Pipeline, PipelineOptions
from ghlsync.store import create_engine
from ghlsync.store._tables_engine import audit_log, inbox, work_items
from tests._backfill_kit import make_export, write_config
from tests._robust_kit import ROOT
from tests.test_backfill_resume import CLI, _next_row

CUSTOMERS = 200
WINDOW, BATCH, CONCURRENCY = 16, 8, 4
LIVE = 3  # live webhooks, sent one by one while the backfill runs
START_AT_ROW = 50  # the first goes in once the backfill has queued this far
LIVE_GAP = 0.4  # seconds between them


@dataclass(frozen=True, slots=True)
class Synced:
    """One synced entity: when it was queued (inbox) and its place in the audit log."""

    source_id: str
    queued_at: float
    done_at: float
    audit_id: int


def _synced(url: str) -> tuple[dict[str, Synced], dict[str, Synced]]:
    """Backfill rows and live deliveries by customer id, each with its first `created` line."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            queued = conn.execute(
                sa.select(
                    inbox.c.source_id, inbox.c.connection_id, sa.func.min(inbox.c.received_at)
                )
                .where(inbox.c.entity_type == "contact")
                .group_by(inbox.c.source_id, inbox.c.connection_id)
            ).all()
            created = conn.execute(
                sa.select(
                    audit_log.c.source_id, sa.func.min(audit_log.c.id), sa.func.min(audit_log.c.at)
                )
                .where(audit_log.c.entity_type == "contact", audit_log.c.action == "created")
                .group_by(audit_log.c.source_id)
            ).all()
            open_work = conn.execute(
                sa.select(sa.func.count())
                .select_from(work_items)
                .where(work_items.c.status.in_(("pending", "leased")))
            ).scalar_one()
    finally:
        engine.dispose()
    assert open_work == 0
    done = {source: (int(audit_id), float(at)) for source, audit_id, at in created}
    backfill: dict[str, Synced] = {}
    live: dict[str, Synced] = {}
    for source, connection, at in queued:
        if source not in done:
            continue  # a row the backfill only linked (twins): no `created` line
        entry = Synced(source, float(at), done[source][1], done[source][0])
        (backfill if connection == "backfill" else live)[source] = entry
    return backfill, live


async def _send_live(pipe: Pipeline, url: str, proc: asyncio.subprocess.Process) -> None:
    """Wait until the backfill is well into the file, then send the live webhooks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while await asyncio.to_thread(_next_row, url) < START_AT_ROW:
        assert proc.returncode is None, "the backfill ended before the live webhooks were sent"
        assert loop.time() < deadline, "the backfill made no progress"
        await asyncio.sleep(0.02)
    for i in range(1, LIVE + 1):
        body = {
            "customer_id": f"live{i}",
            "first_name": "Liv",
            "last_name": f"Now{i}",
            "email": f"live{i}@example.com",
            "phone": f"(737) 555-01{i:02d}",
        }
        [answer] = await pipe.send([DemoEvent("customer.created", body)])
        assert answer.status == 202, answer.body
        await asyncio.sleep(LIVE_GAP)


async def test_live_webhooks_wait_behind_at_most_the_window(
    database_url: str, tmp_path: Path
) -> None:
    export = make_export(tmp_path / "customers.csv", CUSTOMERS, existing=0)
    config = write_config(
        tmp_path / "ghlsync.yaml",
        worker={"concurrency": CONCURRENCY, "poll_interval": 0.05},
        backfill={"window": WINDOW, "batch": BATCH},
    )
    # GHL's pace at a few times its real speed (60 calls/s): the file takes several seconds.
    options = PipelineOptions(database_url=database_url, start_worker=False, burst=60)
    async with Pipeline(options) as pipe:
        env = {**os.environ, **pipe.environment(), "GHLSYNC_CONFIG": str(config)}
        command = [*CLI, str(export.path), "--json"]
        with (tmp_path / "backfill.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, env=env, stdout=log, stderr=log
            )
            try:
                await _send_live(pipe, database_url, proc)
                code = await asyncio.wait_for(proc.wait(), 120)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        assert code == 0, (tmp_path / "backfill.log").read_text()[-2000:]
        await pipe.wait_drained()
        requests = await pipe.sandbox_json("/_sandbox/requests")

    backfill, live = await asyncio.to_thread(_synced, database_url)
    assert sorted(live) == [f"live{i}" for i in range(1, LIVE + 1)]
    assert len(backfill) >= CUSTOMERS - 2  # every new customer (twins share a contact)
    assert not any(r["status"] == 429 for r in requests)
    for name, item in sorted(live.items()):
        # Rows the backfill had queued before the live delivery and that were synced after it
        # arrived but before it: the window it waited behind.
        ahead = [
            b for b in backfill.values() if b.queued_at <= item.queued_at < b.done_at
            and b.audit_id < item.audit_id
        ]  # fmt: skip
        # Rows queued after it that were synced before it: the queue hands it out first (oldest
        # first), so only rows the worker had in flight beside it can finish first.
        overtook = [
            b for b in backfill.values()
            if b.queued_at > item.queued_at and b.audit_id < item.audit_id
        ]  # fmt: skip
        after = [b for b in backfill.values() if b.queued_at > item.queued_at]
        assert len(after) >= 50, (name, len(after))  # the file was far from done
        assert len(ahead) <= WINDOW, (name, len(ahead))
        assert len(overtook) <= CONCURRENCY, (name, len(overtook))
