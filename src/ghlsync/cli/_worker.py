"""`ghlsync worker`: sync queued work to GHL; run as many as you like against one database.

Signals: the first SIGTERM or SIGINT drains (no new claims; the items in flight get
`--drain-seconds`, then the leases of unfinished ones are released for other workers) and the
process exits 0. A second signal stops at once; the leases it held expire instead.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer

from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    check_key_or_fail,
    fail,
    load_config_or_fail,
    open_store,
)

__all__ = ["worker"]


def worker(
    config: Path | None = CONFIG_OPTION,
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, help="Items in flight at once (default: worker.concurrency)."
    ),
    drain_seconds: float = typer.Option(
        30.0,
        "--drain-seconds",
        min=0,
        help="On SIGTERM, how long the items in flight may take before their leases are "
        "released to other workers.",
    ),
) -> None:
    """Sync queued work to GHL until stopped (SIGTERM/Ctrl-C drains, then exits 0)."""
    loaded = load_config_or_fail("worker", config)
    with open_store("worker", loaded.database_url) as engine:
        check_key_or_fail("worker", engine)
        services = _services(engine, loaded)
        if not services.can_sync():
            raise fail(
                "worker",
                "the worker needs a GHL token: ghl.location_id and ghl.token (or "
                "GHLSYNC_GHL_LOCATION_ID and GHLSYNC_GHL_TOKEN), or locations connected with "
                "`ghlsync auth login` / an agency install",
            )
        asyncio.run(_run(engine, loaded, services, concurrency, drain_seconds))


def _services(engine: sa.Engine, config: Any) -> Any:
    """Per-location tokens (config, then the vault), calendars and mappings."""
    from ghlsync.engine.locations._services import LocationServices
    from ghlsync.ghl._crypto import SecretKeyError

    try:
        return LocationServices.build(engine, config)
    except SecretKeyError as exc:
        raise fail("worker", f"cannot open the token vault: {exc}") from None


async def _run(
    engine: sa.Engine, config: Any, services: Any, concurrency: int | None, drain: float
) -> None:
    from ghlsync.engine import Worker
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.mapping import Mapper

    # Shared budget: every worker process of a location takes its calls from one row.
    limiter = SqlRateLimiter(engine)
    client = GHLClient(base_url=config.ghl.base_url, tokens=services.tokens, limiter=limiter)
    runner = Worker(
        engine,
        client,
        Mapper(config),
        config,
        limiter=services.gate(limiter),  # no budget for uninstalled locations: not claimed
        locations=services.directory,
        concurrency=concurrency,
        token_advice=services.tokens.unauthorized_fix,
    )
    stop = asyncio.Event()
    task = asyncio.ensure_future(runner.run(stop, drain_seconds=drain))
    _on_signals(stop, task)
    typer.echo(f"ghlsync worker {runner.worker_id}: running (SIGTERM/Ctrl-C drains)", err=True)
    try:
        await task
    except asyncio.CancelledError:
        typer.echo("ghlsync worker: stopped without draining", err=True)
    finally:
        await client.aclose()
    typer.echo(
        f"ghlsync worker: stopped after {runner.processed} items, "
        f"{runner.released} leases released",
        err=True,
    )


def _on_signals(stop: asyncio.Event, task: asyncio.Future[None]) -> None:
    loop = asyncio.get_running_loop()

    def _handle() -> None:
        if stop.is_set():
            task.cancel()  # a second signal: do not wait for the drain
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _handle)
