"""The mapping tester: the GHL calls and recipe steps one DripJobs event would cause, nothing
sent.

The same engine as `ghlsync preview` (`ghlsync.engine.flows._preview`): the configured
mapping maps the payload, the flows the worker runs plan the calls, and the recipes its
trigger names are dry-run (conditions, templates, dates, timers), all against one throwaway
store (what a first delivery would do). Sample payloads come from the demo's event stream, so
every configured event has one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote

from ghlsync._json import UnsafeJSON, load_json
from ghlsync.mapping import (
    AppConfig,
    ConfigError,
    MappedEvent,
    Mapper,
    MappingError,
    UnknownEventError,
)

__all__ = ["run_tester", "sample_payloads"]


def sample_payloads(config: AppConfig) -> dict[str, str]:
    """One example body (pretty JSON) per configured event name."""
    from ghlsync.demo._stream import build_stream

    events, _ = build_stream(3, malformed=False)
    samples: dict[str, str] = {}
    for event in events:
        if event.event in config.events and isinstance(event.body, dict):
            samples.setdefault(event.event, json.dumps(event.body, indent=2))
    for name, rule in config.events.items():
        # No example of this event in the stream: one of the same kind of record will do.
        kin = (other for other, r in config.events.items() if r.entity == rule.entity)
        samples.setdefault(name, next((samples[o] for o in kin if o in samples), "{}"))
    return dict(sorted(samples.items()))


def run_tester(config: AppConfig, event: str, text: str) -> dict[str, Any]:
    """`{event, calls, not_mapped, problems, recipes}` for one payload; problems instead of
    calls (and no recipes) when the payload is not JSON or cannot be mapped."""
    try:
        body = load_json(text.encode("utf-8"))
    except UnsafeJSON as exc:
        return _problem(event, [f"The payload is not valid JSON: {exc}"])
    if not isinstance(body, dict):
        return _problem(event, ["The payload must be a JSON object ({...})."])
    if isinstance(body.get("payload"), dict):
        event = event or str(body.get("event") or "")
        body = body["payload"]
    mapper = Mapper(config)
    try:
        mapped = mapper.map(event, body)
    except UnknownEventError as exc:
        return _problem(event, [str(exc)])
    except MappingError as exc:
        problems = [str(p) for p in getattr(exc, "problems", [exc])]
        return {**_problem(event, problems), "not_mapped": _unmapped(mapper, event, body)}
    try:
        calls, recipes = asyncio.run(_dry_run(config, event, body, mapped))
    except Exception as exc:  # a flow's own refusal (e.g. a task whose contact is unknown)
        return _problem(event, [f"{type(exc).__name__}: {exc}"])
    return {
        "event": event,
        "calls": calls,
        "not_mapped": mapper.unmapped(event, body),
        "problems": [],
        "recipes": recipes,
    }


def _unmapped(mapper: Mapper, event: str, body: dict[str, Any]) -> list[str]:
    """The fields no rule reads; none when the payload is too broken to tell."""
    try:
        return mapper.unmapped(event, body)
    except MappingError:
        return []


def _problem(event: str, problems: list[str]) -> dict[str, Any]:
    return {"event": event, "calls": [], "not_mapped": [], "problems": problems, "recipes": None}


async def _dry_run(
    config: AppConfig, event: str, body: dict[str, Any], mapped: MappedEvent
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The planned GHL calls and the recipes, in one throwaway store; nothing is sent."""
    from ghlsync.engine.flows._preview import (
        dripjobs_trigger,
        dry_run_recipes,
        plan_event,
        scratch_store,
    )
    from ghlsync.engine.flows.recipes._hook import has_recipes

    trigger = dripjobs_trigger(event)
    with scratch_store("ghlsync-console-") as engine:
        planned = await plan_event(engine, config, mapped)
        recipes: dict[str, Any] = {
            "trigger": trigger,
            "any_on": has_recipes(config),  # as preview: no enabled recipe, no dry run
            "runs": [],
            "not_run": [],
            "cancels": [],
            "problems": [],
        }
        if recipes["any_on"]:
            try:
                found = await dry_run_recipes(engine, config, trigger, body)
            except ConfigError as exc:
                recipes["problems"] = list(exc.problems)
            except MappingError as exc:  # a step that cannot be prepared, as preview says
                recipes["problems"] = [str(exc)]
            else:
                recipes.update(_recipes(found))
    return [_call(call.as_dict()) for call in planned], recipes


def _recipes(found: Any) -> dict[str, Any]:
    """The `EventPreview` for the page: the recipes that run (now or on a timer) with their
    steps, those that do not and why (the condition that failed, or off), and the cancels."""
    runs = [
        {
            "name": r.name,
            "enabled": r.enabled,
            "wait": r.wait,
            "due": r.due,
            "unless": list(r.unless),
            "steps": [
                {
                    "action": step.action,
                    "detail": step.detail or step.outcome,
                    "calls": [_call(call, decode=True) for call in step.calls],
                }
                for step in r.steps
            ],
        }
        for r in found.recipes
        if r.runs
    ]
    not_run = [{"name": r.name, "why": r.why_not} for r in found.recipes if not r.runs]
    return {"runs": runs, "not_run": not_run, "cancels": list(found.cancels)}


def _call(call: dict[str, Any], decode: bool = False) -> dict[str, Any]:
    """One call for the page; `decode` makes a recipe step's placeholders (`<contact of
    customer C1>`) legible, as `ghlsync preview` prints them."""
    query = "&".join(f"{k}={v}" for k, v in call.get("params", {}).items())
    base = unquote(call["path"]) if decode else call["path"]
    path = f"{base}?{query}" if query else base
    body = json.dumps(call["body"], indent=2, ensure_ascii=False) if "body" in call else None
    return {
        "method": call["method"],
        "path": path,
        "purpose": call.get("purpose", ""),
        "body": body,
    }
