"""`ghlsync recipes list|show NAME|test NAME EVENT.json`: the configured recipes, and a dry run.

`test` runs one recipe on an event the way the worker would (conditions, templates, dates,
by-name lookups) and prints the GHL calls each step would make; nothing is sent or written.
The renderer is shared with `ghlsync preview`, which shows every recipe an event starts.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import typer

from ghlsync.mapping import AppConfig

recipes_app = typer.Typer(
    name="recipes",
    help="List, show and dry-run the recipes (automations) of ghlsync.yaml.",
    no_args_is_help=True,
)

_CONFIG = typer.Option(
    None, "--config", help="ghlsync.yaml to use (default: $GHLSYNC_CONFIG or ./ghlsync.yaml)."
)
_JSON = typer.Option(False, "--json", help="Print as JSON.")
_NAME = typer.Argument(..., help="The recipe's name (see `ghlsync recipes list`).")
_FILE = typer.Argument(
    ..., exists=True, dir_okay=False, readable=True, help="A JSON body as a Zap would POST it."
)
_EVENT = typer.Option(None, "--event", help='The event name (default: the file\'s "event" key).')
_STORE = typer.Option(
    False, "--store", help="Read the configured store (steps done before show as skipped)."
)


def register(app: typer.Typer) -> None:
    """Add `recipes` to `app`."""
    app.add_typer(recipes_app)


def _load(command: str, config: Path | None) -> AppConfig:
    from ghlsync.cli._engine_common import load_config_or_fail

    loaded: AppConfig = load_config_or_fail(f"recipes {command}", config)
    return loaded


@recipes_app.command("list")
def list_recipes(config: Path | None = _CONFIG, as_json: bool = _JSON) -> None:
    """Every recipe: name, on or off, its trigger, its steps and its wait."""
    book = _book("list", _load("list", config))
    rows = [
        {
            "name": r.name,
            "enabled": r.enabled,
            "trigger": r.trigger,
            "steps": [s.action for s in r.do],
            "wait_seconds": r.after.wait if r.after else 0,
            "unless": list(r.after.unless) if r.after else [],
        }
        for r in book.recipes
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no recipes (add a `recipes:` section; see docs/recipes.md)")
    for row in rows:
        state = "on " if row["enabled"] else "off"
        wait = f", after {_duration(row['wait_seconds'])}" if row["wait_seconds"] else ""
        steps = ", ".join(row["steps"])
        typer.echo(f"{state} {row['name']}: when {row['trigger']}{wait} -> {steps}")


@recipes_app.command("show")
def show(name: str = _NAME, config: Path | None = _CONFIG) -> None:
    """One recipe in full, as validated (YAML)."""
    import yaml

    recipe = _book("show", _load("show", config)).named(name)
    if recipe is None:
        raise _unknown("show", name, config)
    data = recipe.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    data["when"] = {"trigger": recipe.trigger, **data["when"].get("conditions", {})}
    data["do"] = [{s.action: s.inputs} for s in recipe.do]
    if recipe.after is not None:
        data["after"]["wait"] = _duration(recipe.after.wait)
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


@recipes_app.command("test")
def test(
    name: str = _NAME,
    file: Path = _FILE,
    event: str | None = _EVENT,
    config: Path | None = _CONFIG,
    store: bool = _STORE,
    as_json: bool = _JSON,
) -> None:
    """Dry-run one recipe on an event: the calls each step would make; nothing is sent."""
    from ghlsync.cli._event_input import read_event
    from ghlsync.engine.flows._preview import dripjobs_trigger

    loaded = _load("test", config)
    if _book("test", loaded).named(name) is None:
        raise _unknown("test", name, config)
    event_name, payload = read_event(file, event)
    found = dry_run(loaded, dripjobs_trigger(event_name), payload, store, only=name)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in found.recipes], indent=2, ensure_ascii=False))
        return
    typer.echo(render_recipes(found))


def dry_run(
    config: AppConfig, trigger: str, payload: dict[str, Any], store: bool, only: str | None = None
) -> Any:
    """The `EventPreview` of `trigger` with `payload` (a throwaway store unless `store`)."""
    from ghlsync.cli._event_input import store_for
    from ghlsync.engine.flows._preview import dry_run_recipes

    with store_for(config, store) as engine:
        return asyncio.run(dry_run_recipes(engine, config, trigger, payload, only=only))


def render_recipes(found: Any) -> str:
    """Each recipe: runs now / waits until / does not run (why), then its steps and calls."""
    if not found.recipes and not found.cancels:
        return f"recipes: none start on {found.trigger}"
    lines = [f"recipes for {found.trigger}; nothing was sent:"]
    for recipe in found.recipes:
        lines += _recipe_lines(recipe)
    if found.cancels:
        lines.append("cancels this contact's waiting runs of: " + ", ".join(found.cancels))
    return "\n".join(lines)


def _recipe_lines(recipe: Any) -> list[str]:
    if not recipe.runs:
        return [f"- {recipe.name}: does not run: {recipe.why_not}"]
    when = "runs now"
    if recipe.wait:
        when = f"timer: runs after {_duration(recipe.wait)}, at {_at(recipe.due)}"
        if recipe.unless:
            when += " unless " + " or ".join(recipe.unless) + " comes first"
    lines = [f"- {recipe.name}: {when}"]
    if not recipe.enabled:
        lines[0] += " (once enabled: it is off)"
    for n, step in enumerate(recipe.steps, 1):
        lines.append(f"  {n}. {step.action}: {step.detail or step.outcome}")
        for call in step.calls:
            query = "&".join(f"{k}={v}" for k, v in call.get("params", {}).items())
            path = unquote(call["path"])  # placeholders like <contact of customer C1> stay legible
            lines.append(f"     {call['method']} {path}{'?' + query if query else ''}")
            if "body" in call:
                lines.append("       " + json.dumps(call["body"], ensure_ascii=False))
    return lines


def _at(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _book(command: str, config: AppConfig) -> Any:
    from ghlsync.cli._engine_common import fail
    from ghlsync.engine.flows.recipes import recipe_book
    from ghlsync.mapping import ConfigError, config_source

    try:
        return recipe_book(config, config_source())
    except ConfigError as exc:
        raise fail(f"recipes {command}", str(exc)) from None


def _unknown(command: str, name: str, config: Path | None) -> typer.Exit:
    from ghlsync.cli._engine_common import fail
    from ghlsync.engine.flows.recipes._book import near

    names = [r.name for r in _book(command, _load(command, config)).recipes]
    hint = near(name, names) or ("; known: " + ", ".join(names) if names else "; none configured")
    return fail(f"recipes {command}", f"{name!r} is not a recipe{hint}", code=1)
