"""Run the steps of one queued recipe run, each exactly once per trigger instance.

For each step, by its idempotency key (recipe + step + trigger instance) in the ID map
(entity type `recipe_step`), with the flows' write-ahead discipline:

- confirmed → done before: nothing is sent (0 calls);
- unknown   → a `pending` row with the step's inputs is committed, the action runs (one
              call), the row is confirmed with what it made;
- pending   → an earlier attempt may have sent it and died before recording: the action is
              told (`ctx.pending`) and a creating action finds its object before creating
              another; the others (tags, enrolment, status) are safe to send again.

A dry run (`recipes test`, `preview`) reads the same store, sends nothing and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.flows.recipes._book import step_inputs
from ghlsync.engine.flows.recipes._context import StepContext
from ghlsync.engine.flows.recipes._dates import looks_relative, parse_relative
from ghlsync.engine.flows.recipes._model import Recipe, Step
from ghlsync.engine.flows.recipes._schedule import step_key
from ghlsync.engine.flows.recipes._spec import ActionSpec
from ghlsync.engine.flows.recipes._values import render
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, ParentNotSyncedError
from ghlsync.engine.flows.to_ghl._plan import Sender
from ghlsync.engine.state import _idmap
from ghlsync.engine.state._idmap import MapState
from ghlsync.engine.state._ledger import shown_mapping
from ghlsync.mapping import MappingError

STEP_ENTITY = "recipe_step"


@dataclass(frozen=True, slots=True)
class RunInput:
    """What a queued run carries (its work row's payload)."""

    recipe: str
    trigger: str
    instance: str
    customer_id: str | None
    ghl_contact_id: str | None
    fields: Mapping[str, Any]
    base_at: float

    def to_payload(self) -> dict[str, Any]:
        """The work row's JSON payload."""
        return {
            "recipe": self.recipe,
            "trigger": self.trigger,
            "instance": self.instance,
            "customer_id": self.customer_id,
            "ghl_contact_id": self.ghl_contact_id,
            "fields": dict(self.fields),
            "base_at": self.base_at,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RunInput:
        """Read a work row's payload back."""
        return cls(
            recipe=str(payload["recipe"]),
            trigger=str(payload.get("trigger") or ""),
            instance=str(payload["instance"]),
            customer_id=payload.get("customer_id"),
            ghl_contact_id=payload.get("ghl_contact_id"),
            fields=dict(payload.get("fields") or {}),
            base_at=float(payload.get("base_at") or 0.0),
        )


async def contact_of(engine: sa.Engine, location_id: str, run: RunInput, live: bool) -> str | None:
    """The GHL contact the run acts on: the event's own, or its customer's from the ID map.

    Live, a customer not in GHL yet is retriable (its own work item is usually queued)."""
    if run.ghl_contact_id:
        return run.ghl_contact_id
    if not run.customer_id:
        return None
    row = shown_mapping(engine, location_id, "contact", run.customer_id) or (
        await asyncio.to_thread(_lookup, engine, location_id, "contact", run.customer_id)
    )
    if row is not None and row.state == "confirmed" and row.ghl_id:
        return row.ghl_id
    if live:
        raise ParentNotSyncedError(
            f"customer {run.customer_id!r} of recipe {run.recipe!r} is not in GHL yet",
            customer_id=run.customer_id,
        )
    return f"<contact of customer {run.customer_id}>"


def _lookup(engine: sa.Engine, location_id: str, kind: str, key: str) -> _idmap.IdMapRow | None:
    with engine.connect() as conn:
        return _idmap.get(conn, location_id, kind, key)


def _record(
    engine: sa.Engine, location_id: str, key: str, ghl_id: str | None, body: Any, now: float
) -> None:
    state: MapState = "pending" if body is not None else "confirmed"
    with engine.begin() as conn:
        _idmap.put(
            conn, location_id, STEP_ENTITY, key,
            ghl_id=ghl_id, state=state, pending_body=body, now=now,
        )  # fmt: skip


def resolve_inputs(
    spec: ActionSpec, step: Step, fields: Mapping[str, Any], base_at: float, ctx: StepContext
) -> dict[str, Any]:
    """The step's inputs with templates filled and dates worked out (MappingError if not)."""
    raw = step_inputs(spec, step.inputs)
    inputs: dict[str, Any] = render(raw, fields)
    for item in spec.inputs:
        value = raw.get(item.name)  # a date's `{field}` anchors it; it is not filled in
        if item.type == "date" and isinstance(value, str) and looks_relative(value):
            try:
                moment = parse_relative(value).resolve(base_at, fields, ctx.zone)
            except ValueError as error:
                raise MappingError(f"{step.action}.{item.name}", value, str(error)) from None
            inputs[item.name] = moment.isoformat(timespec="seconds")
    return inputs


async def run_steps(
    recipe: Recipe,
    run: RunInput,
    base: StepContext,
    actions: Mapping[str, ActionSpec],
) -> list[EntityOutcome]:
    """Every step of `recipe` for `run`, in order; one outcome per step."""
    outcomes = []
    fields = {**run.fields, "contact_id": base.contact_id or "", "location_id": base.location_id}
    for index, step in enumerate(recipe.do):
        spec = actions[step.action]
        key = step_key(recipe.name, index, run.instance)
        ctx = replace(base, key=key, fields=fields, base_at=run.base_at)
        outcomes.append(await _one_step(recipe, index, spec, step, ctx))
    return outcomes


async def _one_step(
    recipe: Recipe, index: int, spec: ActionSpec, step: Step, ctx: StepContext
) -> EntityOutcome:
    name = f"{recipe.name}#{index + 1}"
    row = await asyncio.to_thread(_lookup, ctx.engine, ctx.location_id, STEP_ENTITY, ctx.key)
    if row is not None and row.state == "confirmed":
        return EntityOutcome(STEP_ENTITY, name, "skipped", row.ghl_id, 0, "done before")
    inputs = resolve_inputs(spec, step, ctx.fields, ctx.base_at, ctx)
    ctx.pending = row.pending_body if row is not None else None
    if ctx.live:
        await asyncio.to_thread(
            _record, ctx.engine, ctx.location_id, ctx.key, None, {"inputs": inputs}, _now(ctx)
        )
    start = _calls(ctx.sender)
    result = await spec.run(ctx, inputs)
    if ctx.live:
        await asyncio.to_thread(
            _record, ctx.engine, ctx.location_id, ctx.key, result.ghl_id or "-", None, _now(ctx)
        )
    calls = _calls(ctx.sender) - start
    return EntityOutcome(STEP_ENTITY, name, step.action, result.ghl_id, calls, result.detail)


def _now(ctx: StepContext) -> float:
    return ctx.clock.now()


def _calls(sender: Sender) -> int:
    return int(getattr(sender, "calls", 0))
