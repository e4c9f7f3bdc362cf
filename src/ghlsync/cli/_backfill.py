"""`ghlsync backfill FILE.csv`: bring existing DripJobs customers in from a CSV export.

The command queues the file's rows as deliveries and runs a worker in the same process to
sync them (other `serve`/`worker` processes on the same store help). Ctrl-C or SIGTERM
stops reading, lets the items in flight finish (bounded), and exits 130; `--resume` then
continues at the next row. See docs/backfill.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer

from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    JSON_OPTION,
    fail,
    load_config_or_fail,
    open_store,
)

__all__ = ["register"]

_FILE = typer.Argument(..., help="The DripJobs CSV export.", show_default=False)
KINDS_HELP = "What the file is: customers, leads or jobs (backfill.kinds in ghlsync.yaml)."


def register(app: typer.Typer) -> None:
    """Add `backfill` to `app`."""
    app.command("backfill")(backfill)


def backfill(
    file: Path = _FILE,
    kind: str = typer.Option("customers", "--kind", help=KINDS_HELP),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Report what would be created, linked, updated or rejected "
        "(with the match report); send nothing to GHL but searches.",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted backfill of this file at its next row."
    ),
    location: str | None = typer.Option(
        None, "--location", help="The GHL location to fill (default: ghl.location_id)."
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="When the export was taken (ISO 8601), for rows without a timestamp; a live "
        "change newer than this wins. Default: the file's modification time.",
    ),
    drain_seconds: float = typer.Option(
        30.0, "--drain-seconds", min=0, help="On Ctrl-C, how long the items in flight may take."
    ),
    config: Path | None = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Import a DripJobs CSV export (customers, leads or jobs) through the sync queue:
    streamed, paced behind live webhooks, resumable, with first-time matching."""
    from ghlsync.backfill import BackfillPlan

    loaded = load_config_or_fail("backfill", config)
    where = location or loaded.ghl.location_id
    if not where:
        raise fail("backfill", "no location: pass --location or set ghl.location_id")
    if kind not in loaded.backfill.kinds:
        raise fail(
            "backfill", f"unknown --kind {kind!r}; choose one of {', '.join(loaded.backfill.kinds)}"
        )
    plan = BackfillPlan(file, kind, where, resume=resume, as_of=as_of)
    with open_store("backfill", loaded.database_url) as engine:
        services = _services(engine, loaded)
        code = asyncio.run(_main(engine, loaded, services, plan, dry_run, as_json, drain_seconds))
    if code:
        raise typer.Exit(code)


def _services(engine: sa.Engine, config: Any) -> Any:
    from ghlsync.engine.locations._services import LocationServices
    from ghlsync.ghl._crypto import SecretKeyError

    try:
        services = LocationServices.build(engine, config)
    except SecretKeyError as exc:
        raise fail("backfill", f"cannot open the token vault: {exc}") from None
    if not services.can_sync():
        raise fail(
            "backfill",
            "a backfill needs a GHL token (ghl.location_id and ghl.token, or "
            "GHLSYNC_GHL_LOCATION_ID and GHLSYNC_GHL_TOKEN, or `ghlsync auth login`)",
        )
    return services


async def _main(
    engine: sa.Engine,
    config: Any,
    services: Any,
    plan: Any,
    dry_run: bool,
    as_json: bool,
    drain: float,
) -> int:
    from ghlsync.backfill._calls import CountingLimiter
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.mapping import Mapper

    limiter = CountingLimiter(SqlRateLimiter(engine))  # the budget live workers share
    client = GHLClient(
        base_url=config.ghl.base_url,
        tokens=services.tokens,
        limiter=limiter,
        api_version=services.directory.api_version,  # v2 or v3 per location
    )
    mapper = Mapper(config)
    try:
        if dry_run:
            return await _dry(engine, mapper, client, plan, limiter, as_json)
        return await _run(engine, config, services, mapper, client, plan, limiter, as_json, drain)
    finally:
        await client.aclose()


async def _dry(
    engine: sa.Engine, mapper: Any, client: Any, plan: Any, limiter: Any, as_json: bool
) -> int:
    from ghlsync.backfill import BackfillError, dry_run
    from ghlsync.cli._backfill_view import ProgressView, print_dry_run
    from ghlsync.dripjobs._csv import CsvFormatError

    with ProgressView(f"dry run {plan.path.name}", quiet=as_json) as view:
        try:
            report = await dry_run(
                engine, mapper, client, plan, calls=lambda: limiter.calls, on_progress=view.update
            )
        except (BackfillError, CsvFormatError) as exc:
            typer.echo(f"ghlsync backfill: {exc}", err=True)
            return 1
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_dry_run(report)
    return 0


async def _run(
    engine: sa.Engine,
    config: Any,
    services: Any,
    mapper: Any,
    client: Any,
    plan: Any,
    limiter: Any,
    as_json: bool,
    drain: float,
) -> int:
    from ghlsync.backfill import Backfill, BackfillError
    from ghlsync.cli._backfill_view import ProgressView, print_summary
    from ghlsync.dripjobs._csv import CsvFormatError
    from ghlsync.engine import Worker

    worker = Worker(
        engine,
        client,
        mapper,
        config,
        limiter=services.gate(limiter),
        locations=services.directory,
    )
    stop, worker_stop = asyncio.Event(), asyncio.Event()
    worker_task = asyncio.ensure_future(worker.run(worker_stop, drain_seconds=drain))
    _on_signals(stop, worker_task)
    try:
        with ProgressView(f"backfill {plan.path.name}", quiet=as_json) as view:
            job = Backfill(
                engine, mapper, client, calls=lambda: limiter.calls, on_progress=view.update
            )
            summary = await _beside(job.run(plan, stop), worker_task, stop)
    except (BackfillError, CsvFormatError) as exc:
        typer.echo(f"ghlsync backfill: {exc}", err=True)
        return 1
    finally:
        worker_stop.set()
        started = time.monotonic()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(worker_task, return_exceptions=True)  # reported by _beside
        if stop.is_set():
            typer.echo(
                f"ghlsync backfill: stopped; {worker.released} items released to other workers "
                f"after {time.monotonic() - started:.1f} s of draining",
                err=True,
            )
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        print_summary(summary)
    return 130 if summary.interrupted else 0


async def _beside(feed: Any, worker: asyncio.Future[None], stop: asyncio.Event) -> Any:
    """Run the feed while the worker runs; a worker that dies stops the feed (nothing would
    settle its rows) with the worker's error."""
    task = asyncio.ensure_future(feed)
    await asyncio.wait({task, worker}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        stop.set()
        summary = await task
        error = worker.exception() if not worker.cancelled() else None
        if error is not None:
            from ghlsync.backfill import BackfillError

            raise BackfillError(
                f"the worker stopped ({type(error).__name__}: {error}); stopped before row "
                f"{summary.next_row}: run again with --resume"
            )
        return summary
    return task.result()


def _on_signals(stop: asyncio.Event, worker: asyncio.Future[None]) -> None:
    loop = asyncio.get_running_loop()

    def _handle() -> None:
        if stop.is_set():
            worker.cancel()  # a second signal: do not wait for the drain
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _handle)
