"""`ghlsync catalog`: every trigger (inbound DripJobs event) and every action (GHL operation)
ghlsync supports, from the mapping config and the client's operation registry, and the
directions each entity syncs in (two-way write-backs from `writeback.triggers`)."""

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
    """List every trigger (DripJobs events ghlsync accepts) and action (GHL operations), and
    which way each entity syncs (DripJobs → GHL, write-backs GHL → DripJobs, kept in GHL)."""
    from ghlsync.mapping import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        typer.echo(f"ghlsync catalog: {exc}", err=True)
        raise typer.Exit(2) from None
    found = {
        "triggers": triggers(loaded),
        "actions": actions(),
        "directions": directions(loaded),
    }
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


def directions(config: AppConfig) -> list[dict[str, Any]]:
    """Which way each entity syncs: DripJobs → GHL (the events' actions) and GHL → DripJobs
    (the write-back triggers); GHL events no trigger takes are kept in the store."""
    from ghlsync.mapping._writeback import EVENT_ENTITY, GHL_EVENTS

    settings = config.writeback
    rows = []
    for entity in ("contact", "task", "note", "appointment"):
        inbound = sorted({rule.action for rule in config.events.values() if rule.entity == entity})
        outbound = [
            {
                "ghl_event": t.event,
                "writeback": t.action,
                "when": t.when,
                "url_configured": settings.url(t.action) is not None,
            }
            for t in settings.triggers
            if EVENT_ENTITY[t.event] == entity
        ]
        taken = {t["ghl_event"] for t in outbound}
        kept = [e for e in GHL_EVENTS if EVENT_ENTITY[e] == entity and e not in taken]
        rows.append(
            {
                "entity": entity,
                "dripjobs_to_ghl": inbound,
                "ghl_to_dripjobs": outbound,
                "kept_in_store": kept,
            }
        )
    if config.opportunities.pipeline("deal") or config.opportunities.pipeline("project"):
        rows.append(_opportunity_direction(config))
    return rows


def _opportunity_direction(config: AppConfig) -> dict[str, Any]:
    """Deal cards (`opportunities:`): upserted from DripJobs; a card moved in the deal pipeline
    becomes `move_deal` (no trigger needed: `flows.to_dripjobs._opportunity`)."""
    from ghlsync.mapping._writeback import OPPORTUNITY_EVENTS

    url = config.writeback.url("move_deal") is not None
    moves = config.opportunities.pipeline("deal") is not None
    outbound = [
        {"ghl_event": e, "writeback": "move_deal", "when": "stage_moved", "url_configured": url}
        for e in OPPORTUNITY_EVENTS
        if moves
    ]
    return {
        "entity": "opportunity",
        "dripjobs_to_ghl": ["upsert"],
        "ghl_to_dripjobs": outbound,
        "kept_in_store": [] if moves else list(OPPORTUNITY_EVENTS),
    }


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
    from ghlsync.cli._tables import Column, FitTable, console, print_table

    out = console()
    columns = [Column("event"), Column("entity"), Column("action"), Column("id field", flex=True)]
    inbound = FitTable(
        f"Triggers: {len(found['triggers'])} DripJobs events (in full: --json)",
        [*columns, Column("tags", flex=True)],
    )
    for t in found["triggers"]:
        inbound.add_row(t["event"], t["entity"], t["action"], t["id_field"], ", ".join(t["tags"]))
    columns = [Column("operation", flex=True), Column("method"), Column("path", flex=True)]
    outbound = FitTable(
        f"Actions: {len(found['actions'])} GHL API v2 operations", [*columns, Column("version")]
    )
    for a in found["actions"]:
        outbound.add_row(a["operation"], a["method"], a["path"], a["version"])
    print_table(inbound, out)
    out.print("Each trigger is POSTed to /hooks/dripjobs/<event>.")
    print_table(outbound, out)
    print_table(_directions_table(found["directions"]), out)


def _directions_table(rows: list[dict[str, Any]]) -> Any:
    from ghlsync.cli._tables import Column, FitTable

    names = ("DripJobs → GHL", "GHL → DripJobs (write-back)", "GHL only (kept)")
    table = FitTable(
        "Directions: what goes which way (docs/two-way.md; in full: --json)",
        [Column("entity"), *(Column(name, flex=True) for name in names)],
    )
    for row in rows:
        back = [
            f"{o['ghl_event']} → {o['writeback']}" + ("" if o["url_configured"] else " (no URL)")
            for o in row["ghl_to_dripjobs"]
        ]
        table.add_row(
            row["entity"],
            ", ".join(row["dripjobs_to_ghl"]) or "-",
            ", ".join(back) or "-",
            ", ".join(row["kept_in_store"]) or "-",
        )
    return table
