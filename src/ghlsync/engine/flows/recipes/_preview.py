"""What recipes an event would run, and the calls their steps would make; nothing is sent.

Used by `ghlsync preview EVENT.json` and `ghlsync recipes test NAME EVENT.json`. It walks the
same code as the worker (conditions, templates, dates, by-name lookups, the step ledger) with
a dry-run sender and writes nothing: a step already done in the store shows as skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows.recipes._book import recipe_book
from ghlsync.engine.flows.recipes._hook import Instance, planned, run_recipe
from ghlsync.engine.flows.recipes._model import Recipe
from ghlsync.engine.flows.recipes._run import RunInput
from ghlsync.engine.flows.recipes._values import folded, unmet
from ghlsync.engine.flows.to_ghl._model import FlowContext
from ghlsync.engine.flows.to_ghl._plan import DrySender
from ghlsync.mapping import AppConfig, Mapper, MappingError


@dataclass(frozen=True, slots=True)
class StepPreview:
    """One step: its action, what it did in the dry run, and the calls it would make."""

    action: str
    outcome: str
    detail: str
    calls: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RecipePreview:
    """One recipe the event's trigger names: would it run, when, and its steps."""

    name: str
    runs: bool
    why_not: str | None = None
    enabled: bool = True
    due: float | None = None
    wait: float = 0.0
    unless: tuple[str, ...] = ()
    steps: list[StepPreview] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "recipe": self.name,
            "runs": self.runs,
            "enabled": self.enabled,
            "why_not": self.why_not,
            "due": self.due,
            "wait_seconds": self.wait,
            "unless": list(self.unless),
            "steps": [
                {"action": s.action, "outcome": s.outcome, "detail": s.detail, "calls": s.calls}
                for s in self.steps
            ],
        }


@dataclass(frozen=True, slots=True)
class EventPreview:
    """The recipes an event starts and the waiting runs it would cancel."""

    trigger: str
    recipes: list[RecipePreview]
    cancels: list[str]


async def preview_event(
    engine: sa.Engine,
    config: AppConfig,
    trigger: str,
    payload: Mapping[str, Any],
    *,
    location_id: str,
    calendar_id: str | None,
    clock: Clock,
    only: str | None = None,
) -> EventPreview:
    """Dry-run every enabled recipe of `trigger` (or only the recipe named `only`)."""
    book = recipe_book(config)
    if only is not None:
        recipe = book.named(only)
        recipes = [recipe] if recipe is not None else []
    else:
        recipes = book.for_trigger(trigger)
    ctx = FlowContext(engine, None, location_id, calendar_id, config, clock)
    instance = Instance(trigger, "preview", dict(payload), clock.now())
    contact, fields = _contact(config, trigger, payload)
    # `recipes test NAME` shows what a recipe would do even while it is off.
    shown = [await _one(ctx, r, instance, contact, fields, only is not None) for r in recipes]
    cancels = [r.name for r in book.cancelled_by(trigger)]
    return EventPreview(trigger, shown, cancels)


def _contact(
    config: AppConfig, trigger: str, payload: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    fields = folded(payload)
    if trigger.startswith("ghl."):
        contact = str(payload.get("contactId") or payload.get("id") or "")
        return f"ghl:{contact}", fields
    try:
        mapped = Mapper(config).map(trigger.removeprefix("dripjobs."), payload)
    except MappingError:
        return str(fields.get("customer_id") or ""), fields
    entity = next((e for e in mapped.entities if e.type == "contact"), None)
    customer = entity.source_id if entity else None
    if customer is None and mapped.primary.parent is not None:
        customer = mapped.primary.parent.source_id
    return customer or "", {**(dict(entity.body) if entity else {}), **fields}


async def _one(
    ctx: FlowContext,
    recipe: Recipe,
    instance: Instance,
    contact: str,
    fields: dict[str, Any],
    even_off: bool = False,
) -> RecipePreview:
    wait = recipe.after.wait if recipe.after else 0.0
    unless = tuple(recipe.after.unless) if recipe.after else ()
    why = unmet(recipe.conditions, instance.fields)
    if not recipe.enabled and not even_off:
        why = "the recipe is not enabled (enabled: false)"
    elif recipe.trigger != instance.trigger:
        why = f"it starts on {recipe.trigger}, not {instance.trigger}"
    if why is not None:
        return RecipePreview(recipe.name, False, why, recipe.enabled, None, wait, unless)
    run = _run_input(recipe, instance, contact, fields, ctx.clock.now())
    sender = DrySender()
    try:
        outcomes = await run_recipe(ctx, recipe, run, sender)
    except MappingError as error:
        return RecipePreview(
            recipe.name, False, str(error), recipe.enabled, run.base_at, wait, unless
        )
    steps = _steps(recipe, outcomes, sender)
    return RecipePreview(recipe.name, True, None, recipe.enabled, run.base_at, wait, unless, steps)


def _run_input(
    recipe: Recipe, instance: Instance, contact: str, fields: dict[str, Any], now: float
) -> RunInput:
    ghl = contact.removeprefix("ghl:") if contact.startswith("ghl:") else None
    plan = planned(recipe, instance, contact or "<no contact>", ghl, fields, now)
    return RunInput.from_payload(plan.payload)


def _steps(recipe: Recipe, outcomes: Sequence[Any], sender: DrySender) -> list[StepPreview]:
    calls = [c.as_dict() for c in sender.planned]
    steps, start = [], 0
    for step, outcome in zip(recipe.do, outcomes, strict=True):
        mine, start = calls[start : start + outcome.calls], start + outcome.calls
        steps.append(StepPreview(step.action, outcome.action, outcome.detail, mine))
    return steps
