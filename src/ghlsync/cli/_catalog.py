"""`ghlsync catalog`: every trigger and action a recipe can use, from the registries the engine
runs (`engine.flows.recipes.TRIGGERS`, built from the config's events and GHL's webhook
types, and `engine.flows.recipes.ACTIONS`), so an entry cannot exist without its
implementation; and the directions each entity syncs in (two-way write-backs from
`writeback.triggers`)."""

from __future__ import annotations

import json
from collections import Counter
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
    """List every trigger (DripJobs events and GHL webhook events) and action (GHL operations
    and DripJobs write-backs) a recipe can use, with its inputs and the API operation behind
    it, and which way each entity syncs (DripJobs → GHL, write-backs GHL → DripJobs, kept)."""
    from ghlsync.mapping import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        typer.echo(f"ghlsync catalog: {exc}", err=True)
        raise typer.Exit(2) from None
    found = build(loaded)
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    _print_tables(found)


def build(config: AppConfig) -> dict[str, Any]:
    """The whole catalog: counts, triggers, actions and directions (what `--json` prints)."""
    found_triggers, found_actions = triggers(config), actions()
    both = [*found_triggers, *found_actions]
    return {
        "count": len(both),
        "counts": dict(sorted(Counter(f"{e['kind']}:{e['side']}" for e in both).items())),
        "triggers": found_triggers,
        "actions": found_actions,
        "directions": directions(config),
    }


README_MARK = "<!-- catalog count: ./scripts/catalog-count rewrites this line -->"


def readme_line(found: dict[str, Any]) -> str:
    """The README's count line, from `build(AppConfig.default())`."""
    counts = found["counts"]
    triggers, actions = len(found["triggers"]), len(found["actions"])
    return (
        f"{README_MARK} **{found['count']} triggers and actions** for recipes: {triggers} "
        f"triggers ({counts.get('trigger:dripjobs', 0)} DripJobs events, "
        f"{counts.get('trigger:ghl', 0)} GHL webhook events) and {actions} actions "
        f"({counts.get('action:ghl', 0)} GHL, {counts.get('action:dripjobs', 0)} DripJobs "
        "write-backs); `ghlsync catalog` lists them."
    )


def triggers(config: AppConfig) -> list[dict[str, Any]]:
    """Every trigger: the config's DripJobs events (`dripjobs.<event>`) and GHL's webhook
    events that name a location (`ghl.<type>`)."""
    from ghlsync.engine.flows.recipes._triggers import dripjobs_triggers
    from ghlsync.engine.flows.recipes._triggers_ghl import ghl_triggers

    found = {**dripjobs_triggers(config), **ghl_triggers()}
    return [
        _entry("trigger", t.id, t.side, t.description, t.fields, t.source) for t in found.values()
    ]


def actions() -> list[dict[str, Any]]:
    """Every action a recipe step can run (`ghlsync.engine.flows.recipes.ACTIONS`)."""
    from ghlsync.engine.flows.recipes import ACTIONS

    return [
        _entry("action", a.id, a.side, a.description, a.inputs, a.operation)
        for a in sorted(ACTIONS.values(), key=lambda a: (a.side != "ghl", a.id))
    ]


def _entry(
    kind: str, id_: str, side: str, description: str, inputs: Any, operation: str
) -> dict[str, Any]:
    return {
        "id": id_,
        "side": side,
        "kind": kind,
        "description": description,
        "inputs": [
            {
                "name": i.name,
                "type": i.type,
                "required": i.required,
                "description": i.description,
            }
            for i in inputs
        ],
        "operation": operation,
    }


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


def _print_tables(found: dict[str, Any]) -> None:
    from ghlsync.cli._tables import Column, FitTable, console, print_table

    out = console()
    counts = found["counts"]
    side = {"trigger": ("dripjobs", "ghl"), "action": ("ghl", "dripjobs")}
    parts = {
        kind: ", ".join(f"{counts.get(f'{kind}:{s}', 0)} {_SIDE[s]}" for s in sides)
        for kind, sides in side.items()
    }
    columns = [Column("id", min_width=12), Column("fields / inputs", flex=True)]
    inbound = FitTable(
        f"Triggers: {len(found['triggers'])} ({parts['trigger']}; in full: --json)",
        [*columns, Column("source", flex=True)],
    )
    for t in found["triggers"]:
        inbound.add_row(t["id"], _inputs(t["inputs"]), t["operation"])
    outbound = FitTable(
        f"Actions: {len(found['actions'])} ({parts['action']})",
        [*columns, Column("operation", flex=True)],
    )
    for a in found["actions"]:
        outbound.add_row(a["id"], _inputs(a["inputs"]), a["operation"])
    print_table(inbound, out)
    print_table(outbound, out)
    out.print(
        f"{found['count']} triggers and actions; a recipe names a trigger in `when:` and "
        "actions in `do:` (docs/recipes.md)."
    )
    print_table(_directions_table(found["directions"]), out)


_SIDE = {"dripjobs": "DripJobs", "ghl": "GHL"}


def _inputs(inputs: list[dict[str, Any]]) -> str:
    """`title*, due*, description`: required ones starred, required first."""
    ordered = sorted(inputs, key=lambda i: not i["required"])
    return ", ".join(i["name"] + ("*" if i["required"] else "") for i in ordered) or "-"


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
