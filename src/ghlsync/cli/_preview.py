"""`ghlsync preview EVENT.json`: the GHL calls one DripJobs event would cause; sends nothing.

The event is mapped with the configured mapping and planned by the same flows the worker
runs (`ghlsync.engine.flows.to_ghl._dispatch.plan`), against a throwaway store (nothing
synced yet: what a first delivery would do) or, with `--store`, the configured store
read-only (what it would do now, given what was synced before).

It also names the payload fields no rule reads ("not mapped: tags, task_assignee"), so a user
sees why a field never arrives, and every field that cannot be mapped, not just the first.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from ghlsync.cli._event_input import read_event, store_for
from ghlsync.mapping import AppConfig, MappedEvent

_FILE = typer.Argument(
    ...,
    exists=True,
    dir_okay=False,
    readable=True,
    help='A JSON body as a Zap would POST it; may hold "event" (and then "payload").',
)
_EVENT = typer.Option(None, "--event", help='The event name (default: the file\'s "event" key).')
_CONFIG = typer.Option(
    None, "--config", help="ghlsync.yaml to use (default: $GHLSYNC_CONFIG or ./ghlsync.yaml)."
)
_STORE = typer.Option(
    False, "--store", help="Plan against the configured store (read-only) instead of an empty one."
)
_JSON = typer.Option(False, "--json", help="Print the mapped event and the calls as JSON.")
_GHL = typer.Option(
    False,
    "--ghl",
    help="The file is a GHL webhook event (ContactCreate, AppointmentUpdate, ...): show the "
    "write-back to DripJobs it would cause (two-way sync).",
)


def register(app: typer.Typer) -> None:
    """Add `preview` to `app`."""
    app.command("preview")(preview)


def preview(
    file: Path = _FILE,
    event: str | None = _EVENT,
    config: Path | None = _CONFIG,
    store: bool = _STORE,
    as_json: bool = _JSON,
    ghl: bool = _GHL,
) -> None:
    """Show the GHL calls (method, path, body) an event would cause; nothing is sent.
    With --ghl: the write-back to DripJobs a GHL event would cause; nothing is sent."""
    loaded = _config(config)
    if ghl:
        _preview_ghl(loaded, file, store, as_json)
        return
    name, payload = read_event(file, event)
    mapped, unmapped = _map(loaded, name, payload)
    calls = _plan(loaded, mapped, store)
    recipes = _recipes(loaded, name, payload, store)
    if as_json:
        out = {"event": name, "mapped": mapped.to_dict(), "calls": calls, "not_mapped": unmapped}
        if recipes is not None:
            out["recipes"] = [r.to_dict() for r in recipes.recipes]
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    typer.echo(render(name, calls, unmapped))
    if recipes is not None:
        from ghlsync.cli._recipes import render_recipes

        typer.echo(render_recipes(recipes))


def _recipes(config: AppConfig, name: str, payload: dict[str, Any], use_store: bool) -> Any:
    """The recipe steps and timers the event would start (docs/recipes.md); None without
    recipes."""
    from ghlsync.cli._recipes import dry_run
    from ghlsync.engine.flows._preview import dripjobs_trigger
    from ghlsync.engine.flows.recipes._hook import has_recipes
    from ghlsync.mapping import MappingError

    if not has_recipes(config):
        return None
    try:
        found = dry_run(config, dripjobs_trigger(name), payload, use_store)
    except MappingError as exc:
        typer.echo(f"ghlsync preview: {exc}", err=True)
        raise typer.Exit(1) from None
    return found if found.recipes or found.cancels else None


def _preview_ghl(config: AppConfig, file: Path, use_store: bool, as_json: bool) -> None:
    """The write-back decision for one GHL event, in a transaction that is rolled back."""
    import time

    from ghlsync.engine.flows._preview import PREVIEW_LOCATION
    from ghlsync.engine.flows.to_dripjobs._dispatch import preview_ghl
    from ghlsync.ghl import GHLError

    try:
        event = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(
            f"{file}: not a JSON file: {exc}", param_hint="EVENT.json"
        ) from None
    if not isinstance(event, dict):
        raise typer.BadParameter(f"{file}: must hold a JSON object", param_hint="EVENT.json")
    event.setdefault("locationId", config.ghl.location_id or PREVIEW_LOCATION)
    with store_for(config, use_store) as engine:
        try:
            found = preview_ghl(
                engine,
                config.writeback,
                event,
                now=time.time(),
                opportunities=config.opportunities,
            )
        except (ValueError, GHLError) as exc:
            typer.echo(f"ghlsync preview: {exc}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"event": event.get("type"), **found}, indent=2, ensure_ascii=False))
        return
    typer.echo(render_writebacks(str(event.get("type")), found))


def render_writebacks(name: str, found: dict[str, Any]) -> str:
    """The write-backs for people: action, where it would go, the body; or why none."""
    writebacks = found["writebacks"]
    if not writebacks:
        why = found["detail"] or found["decision"]
        return f"{name}: no write-back ({why}); nothing was sent"
    count = f"{len(writebacks)} write-back{'s' if len(writebacks) > 1 else ''}"
    lines = [f"{name}: {count} to DripJobs; nothing was sent"]
    for n, item in enumerate(writebacks, 1):
        where = item["url"] or "no URL configured: it would be recorded as skipped"
        lines.append(f"{n}. {item['action']} → POST {where}")
        body = json.dumps(item["body"], indent=2, ensure_ascii=False)
        lines += ["   " + line for line in body.splitlines()]
    return "\n".join(lines)


def render(name: str, calls: list[dict[str, Any]], unmapped: list[str] | None = None) -> str:
    """The calls for people: one numbered line each, the body indented below it; then the
    payload fields no rule reads."""
    ignored = [not_mapped_line(unmapped)] if unmapped else []
    if not calls:
        return "\n".join([f"{name}: no GHL call (nothing to change); nothing was sent", *ignored])
    lines = [f"{name}: {len(calls)} GHL call{'s' if len(calls) > 1 else ''}; nothing was sent"]
    for n, call in enumerate(calls, 1):
        query = "&".join(f"{k}={v}" for k, v in call.get("params", {}).items())
        path = f"{call['path']}?{query}" if query else call["path"]
        lines.append(f"{n}. {call['method']} {path}  ({call['purpose']})")
        if "body" in call:
            body = json.dumps(call["body"], indent=2, ensure_ascii=False)
            lines += ["   " + line for line in body.splitlines()]
    return "\n".join([*lines, *ignored])


def not_mapped_line(unmapped: list[str]) -> str:
    """`not mapped: tags, task_assignee` (the fields as folded: what a rule's `from` names)."""
    return "not mapped: " + ", ".join(unmapped)


def _config(path: Path | None) -> AppConfig:
    from ghlsync.cli._engine_common import load_config_or_fail

    loaded: AppConfig = load_config_or_fail("preview", path)  # the store every command uses
    return loaded


def _map(config: AppConfig, name: str, payload: dict[str, Any]) -> tuple[MappedEvent, list[str]]:
    """The mapped event and the fields no rule reads; every mapping problem, one per line."""
    from ghlsync.mapping import Mapper, MappingError, UnknownEventError

    mapper = Mapper(config)
    try:
        return mapper.map(name, payload), mapper.unmapped(name, payload)
    except UnknownEventError as exc:
        typer.echo(f"ghlsync preview: {exc}", err=True)
        raise typer.Exit(1) from None
    except MappingError as exc:
        problems = exc.problems
        count = f"{len(problems)} fields" if len(problems) > 1 else "a field"
        lines = [f"ghlsync preview: {name}: {count} cannot be mapped:"]
        lines += [f"  - {problem}" for problem in problems]
        unmapped = mapper.unmapped(name, payload)
        if unmapped:
            lines.append(not_mapped_line(unmapped))
        typer.echo("\n".join(lines), err=True)
        raise typer.Exit(1) from None


def _plan(config: AppConfig, mapped: MappedEvent, use_store: bool) -> list[dict[str, Any]]:
    from ghlsync.engine.flows._preview import plan_event
    from ghlsync.ghl import GHLError
    from ghlsync.mapping import MappingError

    with store_for(config, use_store) as engine:
        try:
            planned = asyncio.run(plan_event(engine, config, mapped))
        except (GHLError, MappingError) as exc:  # e.g. a task whose contact was never synced
            typer.echo(f"ghlsync preview: {exc}", err=True)
            raise typer.Exit(1) from None
    return [call.as_dict() for call in planned]
