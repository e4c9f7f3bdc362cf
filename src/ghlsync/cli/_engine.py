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

dlq_app = typer.Typer(help="Inspect and replay work that could not be synced (dead letters).")

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
    """Queue depth by status and location, dead letters, recent errors and rate budgets."""
    from ghlsync.engine import add_budgets, queue_status
    from ghlsync.ghl._ratelimit import SqlRateLimiter

    loaded = _load("status", config)
    with _store("status", loaded.database_url, write=False) as engine:
        report = queue_status(engine)
        asyncio.run(add_budgets(report, SqlRateLimiter(engine)))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console = Console()
    console.print(_status_table(report))
    console.print(_workers_table(report))
    errors = _errors_table(report)
    if errors.row_count:
        console.print(errors)


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
    return text + (" (paused)" if paused else "")


def _status_table(report: Any) -> Table:
    table = Table(title="Work queue")
    for name in ("location", "pending", "leased", "done", "dead", "dead letters", "lag"):
        table.add_column(name, justify="left" if name == "location" else "right")
    table.add_column("rate budget")
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


def _workers_table(report: Any) -> Table:
    live = report.live_workers()
    table = Table(title=f"Workers ({live} live)")
    for name in ("worker", "state", "in flight", "processed", "heartbeat"):
        table.add_column(name, justify="right" if name in ("in flight", "processed") else "left")
    for worker in report.workers:
        beat = f"{_age(worker.heartbeat_age)} ago" + ("" if worker.alive else " (stale)")
        table.add_row(
            worker.worker_id, worker.state, str(worker.in_flight), str(worker.processed), beat
        )
    return table


def _errors_table(report: Any) -> Table:
    table = Table(title="Last errors")
    for name in ("location", "entity", "status", "error"):
        table.add_column(name)
    for loc in report.locations.values():
        for error in loc.last_errors:
            table.add_row(
                loc.location_id, f"{error.entity_type}:{error.source_id}", error.status, error.error
            )
    return table


# ------------------------------------------------------------------------------------- dlq


@dlq_app.command("list")
def dlq_list(
    config: Path | None = _CONFIG,
    location: str | None = typer.Option(None, "--location", help="Only this location."),
    replayed: bool = typer.Option(False, "--replayed", help="Include replayed dead letters."),
    as_json: bool = _JSON,
) -> None:
    """Dead letters, newest first."""
    from ghlsync.engine import list_dead_letters

    loaded = _load("dlq list", config)
    with _store("dlq list", loaded.database_url, write=False) as engine:
        letters = list_dead_letters(engine, location=location, include_replayed=replayed)
    if as_json:
        typer.echo(json.dumps([letter.to_dict() for letter in letters], indent=2))
        return
    table = Table(title=f"Dead letters ({len(letters)})")
    for name in ("id", "location", "entity", "event", "attempts", "when", "reason"):
        table.add_column(name)
    for letter in letters:
        table.add_row(
            str(letter.id),
            letter.location_id,
            f"{letter.entity_type}:{letter.source_id}",
            letter.event,
            str(letter.attempts),
            _when(letter.created_at),
            letter.reason,
        )
    Console().print(table)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


@dlq_app.command("show")
def dlq_show(
    letter_id: int = typer.Argument(..., metavar="ID", help="The dead letter's id."),
    config: Path | None = _CONFIG,
    as_json: bool = _JSON,
) -> None:
    """One dead letter: its reason, error class and payload."""
    from ghlsync.engine import get_dead_letter

    loaded = _load("dlq show", config)
    with _store("dlq show", loaded.database_url, write=False) as engine:
        letter = get_dead_letter(engine, letter_id)
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


@dlq_app.command("replay")
def dlq_replay(
    letter_id: int | None = typer.Argument(None, metavar="[ID]", help="The dead letter's id."),
    replay_everything: bool = typer.Option(False, "--all", help="Replay every dead letter."),
    location: str | None = typer.Option(None, "--location", help="With --all: only this location."),
    config: Path | None = _CONFIG,
) -> None:
    """Send dead letters back to the queue (attempts reset); the worker syncs them again."""
    from ghlsync.engine import get_dead_letter, replay, replay_all

    if (letter_id is None) == (not replay_everything):
        raise _fail("dlq replay", "give either a dead letter ID or --all")
    loaded = _load("dlq replay", config)
    with _store("dlq replay", loaded.database_url) as engine:
        if replay_everything:
            typer.echo(f"replayed {replay_all(engine, location=location)} dead letters")
            return
        assert letter_id is not None
        if replay(engine, letter_id):
            typer.echo(f"replayed dead letter {letter_id}")
            return
        letter = get_dead_letter(engine, letter_id)
    if letter is None:
        raise _fail("dlq replay", f"no dead letter with id {letter_id}", code=1)
    raise _fail(
        "dlq replay",
        f"dead letter {letter_id} was already replayed at {_when(letter.replayed_at)}",
        code=1,
    )
