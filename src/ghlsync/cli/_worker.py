"""`ghlsync worker`: sync queued work to GHL; run as many as you like against one database.

Signals: the first SIGTERM or SIGINT drains (no new claims; the items in flight get
`--drain-seconds`, then the leases of unfinished ones are released for other workers) and the
process exits 0. A second signal stops at once; the leases it held expire instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer

from ghlsync.cli._engine_common import CONFIG_OPTION, fail, load_config_or_fail, open_store

__all__ = ["worker", "worker_tokens"]


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
        tokens = worker_tokens(engine, loaded)
        if tokens is None:
            raise fail(
                "worker",
                "the worker needs a GHL token: ghl.location_id and ghl.token (or "
                "GHLSYNC_GHL_LOCATION_ID and GHLSYNC_GHL_TOKEN), or locations connected with "
                "`ghlsync auth login` / an agency install",
            )
        asyncio.run(_run(engine, loaded, tokens, concurrency, drain_seconds))


def worker_tokens(engine: sa.Engine, config: Any) -> Any | None:
    """The worker's `TokenSource`: the configured token, plus the vault when it holds any
    connection (one token per location); None when there is neither."""
    from ghlsync.engine._location_tokens import LocationTokens

    vault = _vault(engine, config) if _has_connections(engine) else None
    tokens = LocationTokens.from_config(config, vault)
    has_static = bool(config.ghl.location_id and config.ghl.token is not None)
    return tokens if has_static or vault is not None else None


def _has_connections(engine: sa.Engine) -> bool:
    from ghlsync.store._tables import ghl_connections

    with engine.connect() as conn:
        return conn.execute(sa.select(ghl_connections.c.key).limit(1)).first() is not None


def _vault(engine: sa.Engine, config: Any) -> Any:
    from ghlsync._secret import Secret
    from ghlsync.ghl._crypto import TokenCipher
    from ghlsync.ghl._oauth import OAuthApp
    from ghlsync.ghl._vault import TokenVault

    client_id = os.environ.get("GHLSYNC_GHL_CLIENT_ID")
    secret = os.environ.get("GHLSYNC_GHL_CLIENT_SECRET")
    oauth = None
    if client_id and secret:  # OAuth connections are refreshed; private tokens need none
        oauth = OAuthApp(client_id, Secret(secret), "", base_url=config.ghl.base_url)
    return TokenVault(engine, TokenCipher.from_env(), oauth)


async def _run(
    engine: sa.Engine, config: Any, tokens: Any, concurrency: int | None, drain: float
) -> None:
    from ghlsync.engine import Worker
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.mapping import Mapper

    # Shared budget: every worker process of a location takes its calls from one row.
    limiter = SqlRateLimiter(engine)
    client = GHLClient(base_url=config.ghl.base_url, tokens=tokens, limiter=limiter)
    runner = Worker(
        engine, client, Mapper(config), config, limiter=limiter, concurrency=concurrency
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
