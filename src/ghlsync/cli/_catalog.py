"""`ghlsync catalog`: every trigger (inbound DripJobs event) and every action (GHL operation)
ghlsync supports, from the mapping config and the client's operation registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ghlsync.mapping import AppConfig

_CONFIG = typer.Option(
    None, "--config", help="ghlsync.yaml whose events to list (default: $GHLSYNC_CONFIG, ...)."
)
_JSON = typer.Option(False, "--json", help="Print the catalog as JSON.")


def register(app: typer.Typer) -> None:
    """Add `catalog` to `app`."""
    app.command("catalog")(catalog)


def catalog(config: Path | None = _CONFIG, as_json: bool = _JSON) -> None:
    """List every trigger (DripJobs events ghlsync accepts) and action (GHL operations)."""
    from ghlsync.mapping import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        typer.echo(f"ghlsync catalog: {exc}", err=True)
        raise typer.Exit(2) from None
    found = {"triggers": triggers(loaded), "actions": actions()}
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    _print_tables(found)


def triggers(config: AppConfig) -> list[dict[str, Any]]:
    """The configured DripJobs events: where they are POSTed and what they do in GHL."""
    return [
        {
            "event": name,
            "path": f"/hooks/dripjobs/{name}",
            "entity": rule.entity,
            "action": rule.action,
            "id_field": rule.id,
            "contact_field": rule.contact,
            "tags": [tag.tag for tag in rule.tags],
        }
        for name, rule in sorted(config.events.items())
    ]


def actions() -> list[dict[str, Any]]:
    """Every GHL API v2 operation the client covers (`ghlsync call` runs any of them)."""
    from ghlsync.ghl import OPERATIONS

    return [
        {
            "operation": op.operation_id,
            "family": op.family,
            "method": op.method,
            "path": op.path,
            "version": op.version,
            "body": op.body is not None,
        }
        for op in sorted(OPERATIONS.values(), key=lambda op: (op.family, op.path, op.method))
    ]


def _print_tables(found: dict[str, list[dict[str, Any]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    inbound = Table(title=f"Triggers: {len(found['triggers'])} DripJobs events")
    inbound.add_column("event", no_wrap=True)
    for name in ("entity", "action", "id field", "tags"):
        inbound.add_column(name, overflow="fold")
    for t in found["triggers"]:
        inbound.add_row(t["event"], t["entity"], t["action"], t["id_field"], ", ".join(t["tags"]))
    outbound = Table(title=f"Actions: {len(found['actions'])} GHL API v2 operations")
    outbound.add_column("operation", overflow="fold")
    outbound.add_column("method", no_wrap=True)
    outbound.add_column("path", overflow="fold")
    outbound.add_column("version", no_wrap=True)
    for a in found["actions"]:
        outbound.add_row(a["operation"], a["method"], a["path"], a["version"])
    console.print(inbound)
    console.print("Each trigger is POSTed to /hooks/dripjobs/<event>.")
    console.print(outbound)
