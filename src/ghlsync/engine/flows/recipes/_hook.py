"""The engine's two entry points into recipes (called by the worker, imported late).

- `after_event(ctx, mapper, item)`: an item's flows succeeded; for each of its deliveries
  whose trigger an enabled recipe names, cancel the contact's runs that trigger is an
  `unless` of, and queue the runs of the recipes it starts whose conditions hold (one per
  recipe and delivery, see `_schedule`).
- `run_item(ctx, item)`: a claimed `recipe` work row: run its steps (`_run`).

The trigger instance is the delivery itself (its connection and dedupe key in the inbox), so
a retried item, a replayed dead letter or a duplicate delivery never starts a second run.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync._metrics import SYNC_METRICS
from ghlsync.engine.flows.recipes._actions import ACTIONS
from ghlsync.engine.flows.recipes._book import RecipeBook, recipe_book
from ghlsync.engine.flows.recipes._context import StepContext
from ghlsync.engine.flows.recipes._model import Recipe
from ghlsync.engine.flows.recipes._run import RunInput, contact_of, run_steps
from ghlsync.engine.flows.recipes._schedule import (
    RECIPE_WORK,
    PlannedRun,
    cancel_waiting,
    queue_runs,
)
from ghlsync.engine.flows.recipes._values import folded, unmet
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext
from ghlsync.engine.flows.to_ghl._plan import DrySender, LiveSender, Sender
from ghlsync.engine.queue._codec import loads
from ghlsync.engine.queue._queue import Claim
from ghlsync.engine.state import _idmap
from ghlsync.mapping import Mapper, MappingError
from ghlsync.store._tables_engine import inbox

__all__ = ["RECIPE_WORK", "after_event", "has_recipes", "run_item"]

GHL_PREFIX = "ghl_"


def has_recipes(config: Any) -> bool:
    """Cheap: does this config have an enabled recipe (else the hook is skipped)."""
    raw = getattr(config, "recipes", None) or []
    return any(not isinstance(e, dict) or e.get("enabled", True) is not False for e in raw)


@dataclass(frozen=True, slots=True)
class Instance:
    """One delivery of an item: a trigger instance."""

    trigger: str
    key: str
    fields: dict[str, Any]
    received_at: float


def trigger_id(entity_type: str, event: str) -> str:
    """`dripjobs.lead.created` or `ghl.ContactTagUpdate` for an item's event."""
    return ("ghl." if entity_type.startswith(GHL_PREFIX) else "dripjobs.") + event


async def after_event(ctx: FlowContext, mapper: Mapper | None, item: Claim) -> None:
    """Cancel and queue recipe runs for the deliveries of a synced item."""
    book = recipe_book(ctx.config)
    wanted = {e for e in item.events if trigger_id(item.entity_type, e) in book.triggers()}
    if not wanted:
        return
    rows = await asyncio.to_thread(_deliveries, ctx.engine, item, sorted(wanted))
    for instance in rows:
        who = await _who(ctx, mapper, item, instance)
        if who is None:
            continue
        await _cancel(ctx, book, instance, who[0])
        await _queue(ctx, book, instance, who)


def _deliveries(engine: sa.Engine, item: Claim, events: Sequence[str]) -> list[Instance]:
    query = (
        sa.select(
            inbox.c.connection_id,
            inbox.c.delivery_key,
            inbox.c.event,
            inbox.c.payload,
            inbox.c.received_at,
        )
        .where(inbox.c.work_id == item.id, inbox.c.event.in_(events))
        .order_by(inbox.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Instance(
            trigger_id(item.entity_type, row.event),
            f"{row.connection_id}/{row.delivery_key}",
            {**item.payload, **loads(row.payload)},
            float(row.received_at),
        )
        for row in rows
    ]


async def _who(
    ctx: FlowContext, mapper: Mapper | None, item: Claim, instance: Instance
) -> tuple[str, str | None, dict[str, Any]] | None:
    """(contact key, GHL contact id if known now, template fields of the mapped contact)."""
    if item.entity_type.startswith(GHL_PREFIX):
        contact = _ghl_contact(item, instance.fields)
        if not contact:  # a product, a custom object, ...: location-level steps still run
            return f"ghl:{instance.trigger}:{item.source_id}", None, {}
        owners = await asyncio.to_thread(_owners, ctx.engine, ctx.location_id, contact)
        return (owners[0] if owners else f"ghl:{contact}"), contact, {}
    if mapper is None:
        return None
    try:
        mapped = mapper.map(instance.trigger.removeprefix("dripjobs."), instance.fields)
    except MappingError:
        return None
    contact_entity = next((e for e in mapped.entities if e.type == "contact"), None)
    customer = contact_entity.source_id if contact_entity else None
    if customer is None and mapped.primary.parent is not None:
        customer = mapped.primary.parent.source_id
    if not customer:
        return None
    body = dict(contact_entity.body) if contact_entity else {}
    return customer, None, body


def _ghl_contact(item: Claim, fields: Mapping[str, Any]) -> str | None:
    if item.entity_type == GHL_PREFIX + "contact" or str(fields.get("type")).startswith("Contact"):
        return item.source_id  # ContactCreate, ..., ContactDndUpdate: the contact itself
    record = fields.get("appointment") if isinstance(fields.get("appointment"), dict) else fields
    value = (record or {}).get("contactId") or fields.get("contactId")
    details = fields.get("contactDetails")  # invoices name their contact there
    if not value and isinstance(details, dict):
        value = details.get("id")
    return str(value) if value else None


def _owners(engine: sa.Engine, location_id: str, ghl_id: str) -> list[str]:
    with engine.connect() as conn:
        return _idmap.source_ids_for(conn, location_id, "contact", ghl_id)


async def _cancel(ctx: FlowContext, book: RecipeBook, instance: Instance, contact: str) -> None:
    names = [r.name for r in book.cancelled_by(instance.trigger)]
    if names:
        why = f"cancelled by {instance.trigger}"
        cancelled = await asyncio.to_thread(
            functools.partial(cancel_waiting, before=instance.received_at),
            ctx.engine,
            ctx.location_id,
            names,
            contact,
            why,
            ctx.clock.now(),
        )
        SYNC_METRICS.timers_cancelled(cancelled)


async def _queue(
    ctx: FlowContext,
    book: RecipeBook,
    instance: Instance,
    who: tuple[str, str | None, dict[str, Any]],
) -> None:
    contact, ghl_contact, contact_fields = who
    now = ctx.clock.now()
    fields = {**contact_fields, **folded(instance.fields)}
    runs = [
        planned(recipe, instance, contact, ghl_contact, fields, now)
        for recipe in book.for_trigger(instance.trigger)
        if unmet(recipe.conditions, instance.fields) is None
    ]
    await asyncio.to_thread(queue_runs, ctx.engine, ctx.location_id, runs, now)


def planned(
    recipe: Recipe,
    instance: Instance,
    contact: str,
    ghl_contact: str | None,
    fields: Mapping[str, Any],
    now: float,
) -> PlannedRun:
    """The run `recipe` gets for one trigger instance: due now, or after its wait."""
    due = now + (recipe.after.wait if recipe.after else 0.0)
    customer = None if contact.startswith("ghl:") else contact
    run = RunInput(recipe.name, instance.trigger, instance.key, customer, ghl_contact, fields, due)
    return PlannedRun(recipe.name, instance.trigger, instance.key, contact, due, run.to_payload())


async def run_item(ctx: FlowContext, item: Claim) -> list[EntityOutcome]:
    """Run a claimed recipe work row's steps (see `_run`)."""
    run = RunInput.from_payload(item.payload)
    _count_fired(ctx, item, run)
    recipe = recipe_book(ctx.config).named(run.recipe)
    if recipe is None or not recipe.enabled:
        why = "the recipe is no longer enabled"
        return [EntityOutcome(RECIPE_WORK, run.recipe, "skipped", None, 0, why)]
    if ctx.client is None:
        raise ValueError("running a recipe needs a GHL client in FlowContext.client")
    sender = LiveSender(ctx.client, ctx.location_id)
    return await run_recipe(ctx, recipe, run, sender)


def _count_fired(ctx: FlowContext, item: Claim, run: RunInput) -> None:
    """A timer (a run queued with a wait: due after its row was made) fires on its first
    try; a run given back untried (a 429 pause) or a replayed dead letter counts again."""
    if item.attempts == 1 and item.created_at is not None and run.base_at > item.created_at:
        SYNC_METRICS.timer_fired(ctx.clock.now() - run.base_at)


async def run_recipe(
    ctx: FlowContext, recipe: Recipe, run: RunInput, sender: Sender
) -> list[EntityOutcome]:
    """The steps of `recipe` for `run` through `sender` (live or dry)."""
    contact = await contact_of(ctx.engine, ctx.location_id, run, sender.live)
    base = StepContext(
        engine=ctx.engine,
        sender=sender,
        config=ctx.config,
        clock=ctx.clock,
        location_id=ctx.location_id,
        contact_id=contact,
        calendar_id=ctx.calendar_id,
        key="",
    )
    return await run_steps(recipe, run, base, ACTIONS)


def dry_sender() -> DrySender:
    """A sender that records calls (for `recipes test` and `preview`)."""
    return DrySender()
