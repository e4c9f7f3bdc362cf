"""`ghlsync record QUERY`: one person as both systems see them (docs/record.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from ghlsync.cli._engine_common import (
    CONFIG_OPTION,
    JSON_OPTION,
    fail,
    load_config_or_fail,
    open_store,
)

__all__ = ["register"]

_QUERY = typer.Argument(
    ...,
    help="A DripJobs customer id, a GHL contact id, an email, a phone (any format) or a name.",
    show_default=False,
)


def register(app: typer.Typer) -> None:
    """Add `record` to `app`."""
    app.command("record")(record)


def record(
    query: str = _QUERY,
    live: bool = typer.Option(
        False, "--live", help="Also fetch GHL's current state (4 calls, within the rate budget)."
    ),
    config: Path | None = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one person across DripJobs and GHL: fields on each side with their owner, tags,
    tasks, notes and appointments, pending work, dead letters and the timeline of changes.
    Several matches are listed, not guessed; no match exits 1."""
    from ghlsync.cli._record_view import print_record
    from ghlsync.records import lookup

    loaded = load_config_or_fail("record", config)
    with open_store("record", loaded.database_url, write=False) as engine:
        if live:
            result = asyncio.run(_live(engine, loaded, query))
        else:
            result = asyncio.run(lookup(engine, loaded, query))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print_record(result)
    if not result.matches:
        raise typer.Exit(1)


async def _live(engine: Any, config: Any, query: str) -> Any:
    from ghlsync.engine.locations._services import LocationServices
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._crypto import SecretKeyError
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.records import lookup

    try:
        services = LocationServices.build(engine, config)
    except SecretKeyError as exc:
        raise fail("record", f"cannot open the token vault: {exc}") from None
    client = GHLClient(
        base_url=config.ghl.base_url,
        tokens=services.tokens,
        limiter=SqlRateLimiter(engine),
        api_version=services.directory.api_version,  # v2 or v3 per location
    )
    try:
        return await lookup(engine, config, query, client=client)
    finally:
        await client.aclose()
