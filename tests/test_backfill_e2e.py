"""Backfill end to end: a DripJobs export with repeats, twins, bad rows and people already
in GHL → the exact GHL end state against the sandbox (real HTTP on loopback), on SQLite and
PostgreSQL; a re-run costs nothing; the dry run writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.backfill import Backfill, BackfillPlan, Progress, Summary, dry_run
from ghlsync.backfill._calls import CountingLimiter
from ghlsync.engine import Worker, list_dead_letters
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._ratelimit import SqlRateLimiter
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import inbox, work_items
from ghlsync.store._tables_sync import id_map
from tests._backfill_kit import make_export, seed_existing
from tests._robust_kit import duplicate_records

GOOD = 240  # customers; with repeats, twins and bad rows the file has 248 rows


@pytest.fixture
def fast_sandbox() -> Any:
    """A sandbox whose rate limit lets a few hundred rows through in about a second."""
    server = SandboxServer(burst=2000, interval_ms=1000).start()
    try:
        yield server
    finally:
        server.stop()


def _config(sandbox: SandboxServer, url: str, **backfill: Any) -> AppConfig:
    base = AppConfig.default()
    ghl = base.ghl.model_copy(
        update={
            "base_url": sandbox.url,
            "location_id": sandbox.location_id,
            "token": Secret(sandbox.token),
            "calendar_id": sandbox.calendar_id,
        }
    )
    worker = base.worker.model_copy(update={"poll_interval": 0.05, "max_attempts": 3})
    settings = base.backfill.model_copy(update=backfill)
    return base.model_copy(
        update={"ghl": ghl, "worker": worker, "database_url": url, "backfill": settings}
    )


class _Run:
    """The backfill as the CLI runs it: one process, one worker beside the feeder."""

    def __init__(self, engine: sa.Engine, config: AppConfig) -> None:
        self.engine, self.config = engine, config
        services = LocationServices.build(engine, config)
        self.limiter = CountingLimiter(SqlRateLimiter(engine))
        self.client = GHLClient(
            base_url=config.ghl.base_url, tokens=services.tokens, limiter=self.limiter
        )
        self.mapper = Mapper(config)
        self.worker = Worker(
            engine, self.client, self.mapper, config, limiter=self.limiter, concurrency=8
        )
        self.in_queue: list[int] = []

    def watch(self, progress: Progress) -> None:
        """Backfill work queued and not settled, as the feeder reports progress."""
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(work_items)
                .where(work_items.c.status.in_(("pending", "leased")))
            ).scalar_one()
        self.in_queue.append(int(count))

    async def backfill(self, plan: BackfillPlan) -> Summary:
        stop = asyncio.Event()
        task = asyncio.create_task(self.worker.run(stop))
        try:
            job = Backfill(
                self.engine,
                self.mapper,
                self.client,
                calls=lambda: self.limiter.calls,
                on_progress=self.watch,
            )
            return await job.run(plan, asyncio.Event())
        finally:
            stop.set()
            await task

    async def close(self) -> None:
        await self.client.aclose()


def _contacts(sandbox: SandboxServer) -> list[dict[str, Any]]:
    location = sandbox.state.locations[sandbox.location_id]
    return list(location.contacts.values())


def _state_json(sandbox: SandboxServer) -> dict[str, Any]:
    location = sandbox.state.locations[sandbox.location_id]
    return {
        "locations": {
            sandbox.location_id: {
                "contacts": list(location.contacts.values()),
                "tasks": [],
                "notes": [],
                "appointments": [],
            }
        }
    }


def _writes(sandbox: SandboxServer) -> Counter[str]:
    return Counter(
        f"{r['method']} {r['path'].split('/')[1]}"
        for r in sandbox.state.requests
        if r["method"] != "GET" and not r["path"].startswith("/contacts/search")
    )


async def test_backfill_reaches_the_exact_end_state(
    database_url: str, fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    export = make_export(tmp_path / "customers.csv", GOOD)
    existing = seed_existing(fast_sandbox.state, fast_sandbox.location_id, export)
    engine = create_engine(database_url)
    migrate(engine)
    run = _Run(engine, _config(fast_sandbox, database_url, window=24, batch=8))
    try:
        summary = await run.backfill(
            BackfillPlan(export.path, "customers", fast_sandbox.location_id)
        )
    finally:
        await run.close()

    contacts = _contacts(fast_sandbox)
    assert len(contacts) == export.contacts_after
    assert duplicate_records(_state_json(fast_sandbox), fast_sandbox.location_id) == []
    by_id = {c["id"]: c for c in contacts}
    # People who were in GHL before were linked and updated, never created again.
    for i in export.existing_by_email:
        assert by_id[existing[f"email{i}"]]["firstName"] == "Pat"
    for i in export.existing_by_phone:
        assert by_id[existing[f"phone{i}"]]["email"] == f"pat{i}@example.com"
    # The ambiguous customer touched neither of its two contacts.
    assert by_id[existing["amb_email"]]["firstName"] == "One"
    assert by_id[existing["amb_phone"]]["email"] == "other@example.com"
    # Repeated rows: the later row's city won.
    for i in export.repeats:
        match = [c for c in contacts if c.get("email") == f"pat{i}@example.com"]
        assert [c.get("city") for c in match] == ["Dallas"]

    counts = summary.counts
    assert counts["created"] == export.created
    linked = len(export.existing_by_email) + len(export.existing_by_phone) + len(export.twins)
    assert counts["linked"] == linked
    assert counts["rejected"] == len(export.bad_rows)
    assert counts["ambiguous"] == 1
    assert not summary.interrupted

    letters = {d.reason for d in list_dead_letters(engine)}
    for row, why in export.bad_rows.items():
        assert any(f"customers.csv row {row}:" in r and why in r for r in letters), (row, letters)
    amb = [r for r in letters if "matches 2 GHL contacts" in r]
    assert len(amb) == 1 and existing["amb_email"] in amb[0] and existing["amb_phone"] in amb[0]

    # Paced: the feeder never ran more than the window (plus one batch) ahead of the worker.
    assert run.in_queue and max(run.in_queue) <= 24 + 8
    engine.dispose()


async def test_rerun_costs_nothing_and_creates_nothing(
    sqlite_url: str, fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    export = make_export(tmp_path / "customers.csv", 60, existing=3)
    seed_existing(fast_sandbox.state, fast_sandbox.location_id, export)
    engine = create_engine(sqlite_url)
    migrate(engine)
    run = _Run(engine, _config(fast_sandbox, sqlite_url))
    plan = BackfillPlan(export.path, "customers", fast_sandbox.location_id)
    try:
        first = await run.backfill(plan)
        calls_before, contacts_before = (
            len(fast_sandbox.state.requests),
            len(_contacts(fast_sandbox)),
        )
        again = await run.backfill(plan)
    finally:
        await run.close()
    assert first.counts["created"] == export.created
    assert len(_contacts(fast_sandbox)) == contacts_before
    # Only the parked ambiguous row is looked at again (one search); nothing else is sent.
    new_calls = fast_sandbox.state.requests[calls_before:]
    assert [(r["method"], r["path"]) for r in new_calls] == [("POST", "/contacts/search")]
    assert again.counts["seen"] == first.counts["queued"]
    assert again.counts.get("queued", 0) == 0
    assert len(list_dead_letters(engine)) == len(export.bad_rows) + 1  # not parked twice
    engine.dispose()


async def test_dry_run_reports_the_match_and_writes_nothing(
    database_url: str, fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    export = make_export(tmp_path / "customers.csv", 80, existing=4)
    seed_existing(fast_sandbox.state, fast_sandbox.location_id, export)
    engine = create_engine(database_url)
    migrate(engine)
    run = _Run(engine, _config(fast_sandbox, database_url))
    before = len(_contacts(fast_sandbox))
    try:
        report = await dry_run(
            engine,
            run.mapper,
            run.client,
            BackfillPlan(export.path, "customers", fast_sandbox.location_id),
            calls=lambda: run.limiter.calls,
        )
    finally:
        await run.close()
    data = report.to_dict()
    assert data["match"] == {"matched": 8, "new": 80 - 8 - 1, "ambiguous": 1}
    assert data["would"]["reject"] == len(export.bad_rows)
    assert data["would"]["merge_repeated"] == len(export.repeats)
    # Twins: a new customer whose email an earlier new row has is linked by GHL, not created.
    assert data["would"]["link"] == 8 + len(export.twins)
    assert {r["row"] for r in data["rejected"]} == set(export.bad_rows)
    assert data["ambiguous"][0]["customer"] == f"dj{export.ambiguous}"
    # Nothing written: only searches reached GHL, and the store holds no queue or links.
    assert {(r["method"], r["path"]) for r in fast_sandbox.state.requests} == {
        ("POST", "/contacts/search")
    }
    assert len(_contacts(fast_sandbox)) == before
    with engine.connect() as conn:
        for table in (inbox, work_items, id_map):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    engine.dispose()


async def test_a_refused_search_stops_resumably(
    sqlite_url: str, fast_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from ghlsync.backfill import BackfillError

    export = make_export(tmp_path / "customers.csv", 30, existing=2)
    engine = create_engine(sqlite_url)
    migrate(engine)
    config = _config(fast_sandbox, sqlite_url)
    wrong = config.model_copy(
        update={"ghl": config.ghl.model_copy(update={"token": Secret("revoked-token")})}
    )
    plan = BackfillPlan(export.path, "customers", fast_sandbox.location_id)
    run = _Run(engine, wrong)
    try:
        with pytest.raises(BackfillError, match=r"GHL refused a contact search.*--resume"):
            await run.backfill(plan)
    finally:
        await run.close()
    assert _contacts(fast_sandbox) == []
    run = _Run(engine, config)
    try:
        done = await run.backfill(BackfillPlan(export.path, "customers", plan.location_id, True))
    finally:
        await run.close()
    assert done.counts["created"] == 30 and not done.interrupted  # nothing in GHL before
    engine.dispose()


def test_cli_dry_run_prints_the_match_report(fast_sandbox: SandboxServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ghlsync.cli import app

    export = make_export(tmp_path / "customers.csv", 20, existing=2)
    seed_existing(fast_sandbox.state, fast_sandbox.location_id, export)
    env = {
        "GHLSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'ghlsync.db'}",
        "GHLSYNC_GHL_BASE_URL": fast_sandbox.url,
        "GHLSYNC_GHL_LOCATION_ID": fast_sandbox.location_id,
        "GHLSYNC_GHL_TOKEN": fast_sandbox.token,
        "COLUMNS": "120",
    }
    runner = CliRunner()
    shown = runner.invoke(app, ["backfill", str(export.path), "--dry-run"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "match report: 4 matched (linked, not created), 15 new, 1 ambiguous" in shown.output
    assert f"row {min(export.bad_rows)}: cannot map it" in shown.output
    data = json.loads(
        runner.invoke(app, ["backfill", str(export.path), "--dry-run", "--json"], env=env).output
    )
    assert data["match"] == {"matched": 4, "new": 15, "ambiguous": 1}
    bad = runner.invoke(app, ["backfill", str(export.path), "--kind", "invoices"], env=env)
    assert bad.exit_code == 2 and "unknown --kind 'invoices'" in bad.output
    missing = runner.invoke(app, ["backfill", str(tmp_path / "nope.csv")], env=env)
    assert missing.exit_code == 1 and "no such file" in missing.output
