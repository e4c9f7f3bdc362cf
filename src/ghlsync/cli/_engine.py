"""`ghlsync worker`, `ghlsync status` and `ghlsync dlq list|show|replay`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    JSON_OPTION,
    fail,
    load_config_or_fail,
    open_store,
)
from ghlsync.cli._tables import Column, FitTable, console, print_table

dlq_app = typer.Typer(
    help="Inspect and replay work that could not be synced (dead letters), and write-backs to "
    "DripJobs that could not be delivered (ids wb_...)."
)

_CONFIG = CONFIG_OPTION
_JSON = JSON_OPTION
_fail = fail
_load = load_config_or_fail
_store = open_store


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    from ghlsync.cli._worker import worker

    app.command("worker")(worker)
    app.command("status")(status)
    app.add_typer(dlq_app, name="dlq")


# ---------------------------------------------------------------------------------- status


def status(config: Path | None = _CONFIG, as_json: bool = _JSON) -> None:
    """Queue depth by status and location, dead letters, recent errors and rate budgets;
    with two-way sync, write-backs to DripJobs by status and the GHL changes kept; the last
    reconcile sweep of each location and the drift it found; recipe timers waiting."""
    from ghlsync.engine import add_budgets, queue_status
    from ghlsync.engine.outbox._report import kept_changes, outbox_counts
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.reconcile._progress import load_all

    loaded = _load("status", config)
    with _store("status", loaded.database_url, write=False) as engine:
        report = queue_status(engine)
        asyncio.run(add_budgets(report, SqlRateLimiter(engine)))
        writebacks, kept = outbox_counts(engine), kept_changes(engine)
        sweeps = [sweep.to_dict() for sweep in load_all(engine)]
        timers = _timers(engine)
    if as_json:
        whole = {**report.to_dict(), "writebacks": writebacks, "kept": kept, "sweeps": sweeps}
        whole["recipe_timers"] = timers
        typer.echo(json.dumps(whole, indent=2))
        return
    out = console()
    print_table(_status_table(report), out)
    print_table(_workers_table(report), out)
    errors = _errors_table(report)
    if errors.row_count:
        print_table(errors, out)
    if writebacks or kept["counts"]:
        print_table(_writeback_table(writebacks, kept), out)
    if kept["recent"]:
        print_table(_kept_table(kept), out)
    if sweeps:
        print_table(_sweeps_table(sweeps), out)
    if timers:
        print_table(_timers_table(timers), out)


def _timers(engine: Any) -> list[dict[str, Any]]:
    """Recipe runs waiting for their time, per location (docs/recipes.md)."""
    from ghlsync.engine.flows.recipes import timer_status

    return [
        {"location_id": t.location_id, "waiting": t.waiting, "next_due": t.next_due}
        for t in timer_status(engine, time.time())
    ]


def _timers_table(timers: list[dict[str, Any]]) -> FitTable:
    columns = [Column("location", flex=True), Column("waiting", justify="right")]
    table = FitTable("Recipe timers", [*columns, Column("next due")])
    for row in timers:
        due = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row["next_due"]))
        table.add_row(row["location_id"], str(row["waiting"]), due)
    return table


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _budget(budget: dict[str, Any] | None) -> str:
    if not budget:
        return "-"
    paused = budget["paused_until"] > time.time()
    remaining = budget["remaining"]
    burst = f"{remaining}/{budget['max']}" if remaining is not None else f"?/{budget['max']}"
    daily = budget["daily_remaining"]
    daily_text = "?" if daily is None else str(daily)
    text = f"{burst} per {budget['interval_ms'] / 1000:g}s, {daily_text} today"
    pace = budget.get("daily_pace")
    if pace is not None:  # a backlog ran ahead of the day: spread what is left until its end
        text += f", daily-budget pacing {pace} per {budget['interval_ms'] / 1000:g}s"
    return text + (" (paused)" if paused else "")


def _status_table(report: Any) -> FitTable:
    numbers = ("pending", "leased", "done", "dead", "dead letters", "lag")
    columns = [Column("location", flex=True), *(Column(n, justify="right") for n in numbers)]
    table = FitTable("Work queue", [*columns, Column("rate budget", flex=True)])
    for loc in report.locations.values():
        c = loc.counts
        table.add_row(
            loc.location_id,
            str(c["pending"]),
            str(c["leased"]),
            str(c["done"]),
            str(c["dead"]),
            str(loc.dead_letters),
            _age(loc.oldest_pending_age),
            _budget(loc.budget),
        )
    totals = report.totals()
    table.add_row(
        "all",
        *(str(totals[k]) for k in ("pending", "leased", "done", "dead", "dead_letters")),
        "",
        "",
        style="bold",
    )
    return table


def _workers_table(report: Any) -> FitTable:
    live = report.live_workers()
    columns = [Column("worker", flex=True), Column("state")]
    columns += [Column("in flight", justify="right"), Column("processed", justify="right")]
    table = FitTable(f"Workers ({live} live)", [*columns, Column("heartbeat")])
    for worker in report.workers:
        beat = f"{_age(worker.heartbeat_age)} ago" + ("" if worker.alive else " (stale)")
        table.add_row(
            worker.worker_id, worker.state, str(worker.in_flight), str(worker.processed), beat
        )
    return table


def _errors_table(report: Any) -> FitTable:
    columns = [Column("location", flex=True), Column("entity", flex=True), Column("status")]
    table = FitTable("Last errors (in full: --json)", [*columns, Column("error", flex=True)])
    for loc in report.locations.values():
        for error in loc.last_errors:
            table.add_row(
                loc.location_id, f"{error.entity_type}:{error.source_id}", error.status, error.error
            )
    return table


def _writeback_table(writebacks: dict[str, dict[str, int]], kept: dict[str, Any]) -> FitTable:
    """Two-way sync: write-backs to DripJobs by status, and GHL changes kept in the store."""
    names = ("pending", "sending", "delivered", "skipped", "dead")
    columns = [Column(name, justify="right") for name in (*names, "kept in GHL")]
    table = FitTable("Write-backs to DripJobs (two-way)", [Column("location", flex=True), *columns])
    for location in sorted({*writebacks, *kept["counts"]}):
        counts = writebacks.get(location, {})
        row = [str(counts.get(name, 0)) for name in names]
        table.add_row(location, *row, str(kept["counts"].get(location, 0)))
    return table


def _kept_table(kept: dict[str, Any]) -> FitTable:
    columns = [Column(name, flex=True) for name in ("location", "record", "event", "changed")]
    title = "Latest GHL changes DripJobs cannot receive (kept, side ghl)"
    table = FitTable(title, [*columns, Column("why", flex=True)])
    for change in kept["recent"]:
        changed = ", ".join(f"{k}={v}" for k, v in change["changed"].items())
        table.add_row(
            change["location_id"], change["entity"], change["event"], changed, change["reason"]
        )
    return table


def _sweeps_table(sweeps: list[dict[str, Any]]) -> FitTable:
    """The last reconcile sweep of each location (docs/reconcile.md) and what it found."""
    columns = [Column("location", flex=True), Column("last sweep"), Column("contacts")]
    table = FitTable("Reconcile sweeps", [*columns, Column("drift found", flex=True)])
    now = time.time()
    for sweep in sweeps:
        if sweep["under_way"]:
            when = f"under way since {_age(now - sweep['started_at'])} ago"
        else:
            when = f"ended {_age(now - sweep['finished_at'])} ago"
            when += "" if sweep["complete"] else " (resumed: no deletions)"
        findings = sweep["findings"]
        found = ", ".join(f"{n} {k}" for k, n in sorted(findings.items())) or "none"
        table.add_row(sweep["location_id"], when, str(sweep["contacts_seen"]), found)
    return table


# ------------------------------------------------------------------------------------- dlq


@dlq_app.command("list")
def dlq_list(
    config: Path | None = _CONFIG,
    location: str | None = typer.Option(None, "--location", help="Only this location."),
    replayed: bool = typer.Option(False, "--replayed", help="Include replayed dead letters."),
    as_json: bool = _JSON,
) -> None:
    """Dead letters, newest first: work that could not be synced to GHL, then write-backs to
    DripJobs that could not be delivered (ids `wb_...`)."""
    from ghlsync.engine import list_dead_letters
    from ghlsync.engine.outbox._report import list_dead_writebacks

    loaded = _load("dlq list", config)
    with _store("dlq list", loaded.database_url, write=False) as engine:
        letters = list_dead_letters(engine, location=location, include_replayed=replayed)
        dead_writebacks = list_dead_writebacks(engine, location=location)
    if as_json:
        entries = [letter.to_dict() for letter in letters]
        entries += [item.to_dict() for item in dead_writebacks]
        typer.echo(json.dumps(entries, indent=2))
        return
    total = len(letters) + len(dead_writebacks)
    table = FitTable(f"Dead letters ({total}; in full: dlq show ID)", _DLQ_COLUMNS)
    for letter in letters:
        table.add_row(
            str(letter.id),
            letter.location_id,
            f"{letter.entity_type}:{letter.source_id}",
            letter.event,
            _when(letter.created_at, short=True),
            letter.reason,
        )
    for item in dead_writebacks:
        table.add_row(
            item.id,
            item.location_id,
            f"writeback:{item.ghl_entity}:{item.ghl_id}",
            item.action,
            _when(item.updated_at, short=True),
            item.reason,
        )
    print_table(table)


_DLQ_COLUMNS = (
    Column("id", justify="right"),
    Column("location", flex=True),
    Column("entity", flex=True, min_width=12),
    Column("event", flex=True, min_width=12),
    Column("when (UTC)"),
    Column("reason", flex=True, min_width=24),
)  # attempts, the full reason and the payload: `dlq show ID`


def _when(epoch: float | None, short: bool = False) -> str:
    if epoch is None:
        return "-"
    # In a listing, to the minute (the column says UTC); `show` gives the second.
    return time.strftime("%Y-%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


@dlq_app.command("show")
def dlq_show(
    letter_id: str = typer.Argument(
        ..., metavar="ID", help="The dead letter's id (a number, or wb_... for a write-back)."
    ),
    config: Path | None = _CONFIG,
    as_json: bool = _JSON,
) -> None:
    """One dead letter: its reason, error class and payload (a write-back: its body)."""
    from ghlsync.engine import get_dead_letter

    if letter_id.startswith("wb_"):
        _show_writeback(letter_id, config, as_json)
        return
    number = _letter_number("dlq show", letter_id)
    loaded = _load("dlq show", config)
    with _store("dlq show", loaded.database_url, write=False) as engine:
        letter = get_dead_letter(engine, number)
    if letter is None:
        raise _fail("dlq show", f"no dead letter with id {letter_id}", code=1)
    if as_json:
        typer.echo(json.dumps(letter.to_dict(), indent=2))
        return
    table = Table(title=f"Dead letter {letter.id}", show_header=False)
    for name, value in (
        ("entity", f"{letter.entity_type}:{letter.source_id} at {letter.location_id}"),
        ("event", letter.event),
        ("reason", letter.reason),
        ("error class", letter.error_class),
        ("attempts", str(letter.attempts)),
        ("dead since", _when(letter.created_at)),
        ("replayed", _when(letter.replayed_at)),
        ("payload", json.dumps(letter.payload, indent=2, ensure_ascii=False)),
    ):
        table.add_row(name, value)
    Console().print(table)


def _letter_number(command: str, letter_id: str) -> int:
    try:
        return int(letter_id)
    except ValueError:
        raise _fail(
            command, f"{letter_id!r} is not a dead letter id (a number or wb_...)"
        ) from None


def _show_writeback(writeback_id: str, config: Path | None, as_json: bool) -> None:
    from ghlsync.engine.outbox._report import get_writeback

    loaded = _load("dlq show", config)
    with _store("dlq show", loaded.database_url, write=False) as engine:
        item = get_writeback(engine, writeback_id)
    if item is None:
        raise _fail("dlq show", f"no write-back with id {writeback_id}", code=1)
    if as_json:
        typer.echo(json.dumps(item.to_dict(), indent=2))
        return
    table = Table(title=f"Write-back {item.id}", show_header=False)
    for name, value in (
        ("action", item.action),
        ("record", f"GHL {item.ghl_entity} {item.ghl_id} at {item.location_id}"),
        ("status", item.status),
        ("reason", item.reason),
        ("last answer", str(item.last_status or "-")),
        ("attempts", str(item.attempts)),
        ("since", _when(item.updated_at)),
        ("replayed", _when(item.replayed_at)),
        ("body", json.dumps(item.body, indent=2, ensure_ascii=False)),
    ):
        table.add_row(name, value)
    Console().print(table)


@dlq_app.command("replay")
def dlq_replay(
    letter_id: str | None = typer.Argument(
        None, metavar="[ID]", help="The dead letter's id (a number, or wb_... for a write-back)."
    ),
    replay_everything: bool = typer.Option(False, "--all", help="Replay every dead letter."),
    location: str | None = typer.Option(None, "--location", help="With --all: only this location."),
    config: Path | None = _CONFIG,
) -> None:
    """Send dead letters back to the queue (attempts reset); the worker syncs them again.
    A write-back (wb_...) is sent again with the same id and body."""
    from ghlsync.engine import get_dead_letter, replay, replay_all
    from ghlsync.engine.outbox._report import replay_dead_writebacks
    from ghlsync.engine.outbox._store import replay as replay_writeback

    if (letter_id is None) == (not replay_everything):
        raise _fail("dlq replay", "give either a dead letter ID or --all")
    loaded = _load("dlq replay", config)
    with _store("dlq replay", loaded.database_url) as engine:
        if replay_everything:
            count = replay_all(engine, location=location)
            count += replay_dead_writebacks(engine, location=location, now=time.time())
            typer.echo(f"replayed {count} dead letters")
            return
        assert letter_id is not None
        if letter_id.startswith("wb_"):
            if replay_writeback(engine, letter_id, now=time.time()):
                typer.echo(f"replayed write-back {letter_id}")
                return
            raise _fail("dlq replay", f"no dead write-back with id {letter_id}", code=1)
        number = _letter_number("dlq replay", letter_id)
        if replay(engine, number):
            typer.echo(f"replayed dead letter {letter_id}")
            return
        letter = get_dead_letter(engine, number)
    if letter is None:
        raise _fail("dlq replay", f"no dead letter with id {letter_id}", code=1)
    raise _fail(
        "dlq replay",
        f"dead letter {letter_id} was already replayed at {_when(letter.replayed_at)}",
        code=1,
    )
