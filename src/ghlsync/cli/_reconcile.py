"""`ghlsync reconcile`: find drift between GHL and the store, and repair what is safe."""

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


def register(app: typer.Typer) -> None:
    """Add `reconcile` to `app`."""
    app.command("reconcile")(reconcile)


def reconcile(
    location: str | None = typer.Option(
        None, "--location", help="The GHL location to sweep (default: ghl.location_id)."
    ),
    repair: bool = typer.Option(
        False, "--repair", help="Fix what has a safe fix (never merges or deletes in GHL)."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only GHL contacts updated since this date (ISO 8601); deletions are then not "
        "looked for.",
    ),
    budget: float = typer.Option(
        0.1, "--budget", min=0.01, max=1.0, help="Share of the location's rate limit to use."
    ),
    config: Path | None = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Walk the location's GHL contacts and their tasks, notes and appointments, and report
    drift from the store: deleted or changed in GHL without a webhook, GHL duplicates, store
    rows with no GHL object."""
    from ghlsync.reconcile import since_date

    loaded = load_config_or_fail("reconcile", config)
    where = location or loaded.ghl.location_id
    if not where:
        raise fail("reconcile", "no location: pass --location or set ghl.location_id")
    try:
        after = since_date(since) if since else None
    except ValueError:
        raise fail("reconcile", f"--since {since!r} is not a date (e.g. 2026-11-30)") from None
    with open_store("reconcile", loaded.database_url) as engine:
        report = asyncio.run(_run(engine, loaded, where, after, budget, repair))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _print(report, repair)


async def _run(
    engine: Any, config: Any, location: str, since: Any, budget: float, repair: bool
) -> Any:
    from ghlsync.engine.locations._services import LocationServices
    from ghlsync.ghl._client import GHLClient
    from ghlsync.ghl._crypto import SecretKeyError
    from ghlsync.ghl._errors import GHLError
    from ghlsync.ghl._ratelimit import SqlRateLimiter
    from ghlsync.reconcile import Sweep

    try:
        services = LocationServices.build(engine, config)
    except SecretKeyError as exc:
        raise fail("reconcile", f"cannot open the token vault: {exc}") from None
    client = GHLClient(
        base_url=config.ghl.base_url,
        tokens=services.tokens,
        limiter=SqlRateLimiter(engine),
        api_version=services.directory.api_version,  # v2 or v3 per location
    )
    try:
        return await Sweep(engine, client, location, since=since, budget=budget).run(repair=repair)
    except GHLError as exc:
        raise fail("reconcile", f"GHL refused the sweep: {exc}", code=1) from None
    finally:
        await client.aclose()


def _print(report: Any, repair: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    counts = report.counts()
    console.print(
        f"{report.location_id}: {report.contacts_seen} GHL contacts checked in "
        f"{report.finished_at - report.started_at:.1f} s, {report.calls} calls; "
        + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no drift")
    )
    if not report.complete:
        console.print("(--since: contacts deleted in GHL are not looked for)")
    if not report.drifts:
        return
    table = Table(title="Drift")
    columns = ["kind", "GHL", "DripJobs", "detail"] + (["repair"] if repair else [])
    for column in columns:
        table.add_column(column)
    for d in report.drifts:
        row = [d.label, ", ".join(d.ghl_ids) or "-", ", ".join(d.dripjobs_ids) or "-", d.detail]
        table.add_row(*row, *([d.repair or "-"] if repair else []))
    console.print(table)
