"""DripJobs write-back actions: a step queues one signed write-back in the durable outbox.

The outbox row's dedupe key is the step's idempotency key, so a step run twice (a retry, a
replayed dead letter) finds its row instead of queueing a second one; the outbox's sender
delivers it to the Zap catch hook configured under `writeback.actions.<action>.url`
(docs/two-way.md). Without a URL the row is recorded as skipped, as for the flows.

That Zap is the one the two-way sync writes to, so a step's `data` is the write-back
contract's (`ACTION_FIELDS`): a step's inputs are the contract's field names (`start`, `end`,
`title`, ...; the older `appointment_*` names are read as them), and ghlsync adds what the
two-way flows add: `ghl_contact_id` of the run's GHL contact, and the customer's email, phone
and names when the step gives none, from the triggering event, else as ghlsync knows that
contact (`known_person`, the two-way appointment write-backs' own). Inputs older configs give
that the contract has no field for (a DripJobs appointment, customer or deal id, a status) are
accepted and left out: DripJobs' Zap actions find the customer by those fields and act on its
nearest scheduled appointment or latest deal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ghlsync.engine.flows.recipes._context import StepContext, StepResult
from ghlsync.engine.flows.recipes._spec import ActionSpec, InputSpec
from ghlsync.engine.flows.to_dripjobs._triggers import PERSON_FIELDS, known_person
from ghlsync.engine.outbox._store import enqueue
from ghlsync.mapping._writeback import ACTION_FIELDS, WRITEBACK_ACTIONS
from ghlsync.store._engine import begin_immediate

# How the catalog shows each contract field a step can give (in this order). The GHL ids are
# not a step's: ghl_contact_id is the run's contact; a step has no GHL appointment or card.
_DEFAULT = "default: the event's, else the GHL contact's"
_INPUTS: dict[str, tuple[str, str]] = {
    "stage": ("text", "the DripJobs stage name"),
    "start": ("date", "date-time (a relative date works); also read as appointment_start"),
    "end": ("date", "date-time (a relative date works); also read as appointment_end"),
    "title": ("text", "the appointment's details; also read as appointment_title"),
    "first_name": ("text", f"the customer's ({_DEFAULT})"),
    "last_name": ("text", _DEFAULT),
    "email": ("text", f"DripJobs finds the customer by it ({_DEFAULT})"),
    "phone": ("text", f"DripJobs finds the customer by it ({_DEFAULT})"),
    "address": ("text", ""),
    "city": ("text", ""),
    "state": ("text", ""),
    "zip": ("text", ""),
    "lead_source": ("text", ""),
    "notes": ("text", ""),
}
_FILLED = frozenset({"ghl_contact_id", "ghl_appointment_id", "ghl_opportunity_id"})
_REQUIRED = {"create_appointment_request": {"start"}, "move_deal": {"stage"}}
_ALIASES = {
    "start": ("appointment_start",),
    "end": ("appointment_end",),
    "title": ("appointment_title",),
}
_RETIRED: dict[str, tuple[str, ...]] = {
    "create_appointment_request": ("customer_id",),
    "update_appointment": ("appointment_id", "appointment_status"),
    "move_deal": ("deal_id",),
}


async def writeback_data(
    ctx: StepContext, action: str, inputs: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """The write-back's flat `data` (only the contract's fields of `action`, as strings, empty
    ones left out) and the given inputs it leaves out."""
    contract = ACTION_FIELDS[action]
    data = {k: str(v) for k, v in inputs.items() if k in contract and v not in (None, "", [])}
    left_out = sorted(k for k in inputs if k not in contract)
    if ctx.contact_id and "ghl_contact_id" in contract:
        data["ghl_contact_id"] = ctx.contact_id
    person = sorted(PERSON_FIELDS & contract)
    for name in person:
        value = ctx.fields.get(name)
        if name not in data and value not in (None, "", []):
            data[name] = str(value)
    if ctx.contact_id and any(name not in data for name in person):
        known = await asyncio.to_thread(_known, ctx, ctx.contact_id)
        for name in person:
            if name in known:
                data.setdefault(name, known[name])
    return data, left_out


def _known(ctx: StepContext, contact: str) -> dict[str, str]:
    with ctx.engine.connect() as conn:
        return known_person(conn, ctx.config.writeback, ctx.location_id, contact)


def _writer(action: str):  # type: ignore[no-untyped-def]
    async def run(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
        data, left_out = await writeback_data(ctx, action, inputs)
        note = f" ({', '.join(left_out)} left out: not write-back fields)" if left_out else ""
        if not ctx.live:
            return StepResult(None, f"write-back {action} {data}{note}")
        url = ctx.config.writeback.url(action)
        queued = await asyncio.to_thread(_queue, ctx, action, data, url)
        return StepResult(queued, f"write-back {action} queued{note}")

    return run


def _queue(ctx: StepContext, action: str, data: dict[str, str], url: str | None) -> str:
    with begin_immediate(ctx.engine) as conn:
        queued = enqueue(
            conn,
            location_id=ctx.location_id,
            action=action,
            dedupe_key=f"recipe:{ctx.key}",
            ghl_entity="contact",
            ghl_id=ctx.contact_id or "-",
            data=data,
            url=url,
            now=ctx.clock.now(),
        )
    return queued.id


def _input(action: str, name: str) -> InputSpec:
    kind, words = _INPUTS.get(name, ("text", ""))
    required = name in _REQUIRED.get(action, ())
    return InputSpec(name, kind, required, words, _ALIASES.get(name, ()))


def _spec(action: str) -> ActionSpec:
    order = {name: index for index, name in enumerate(_INPUTS)}
    names = sorted(ACTION_FIELDS[action] - _FILLED, key=lambda n: (order.get(n, len(order)), n))
    inputs = tuple(_input(action, name) for name in names)
    words = action.replace("_", " ")
    return ActionSpec(
        f"dripjobs.{action}",
        "dripjobs",
        f"DripJobs: {words} (signed write-back to its Zap catch hook)",
        inputs,
        f"write-back {action}",
        _writer(action),
        _RETIRED.get(action, ()),
    )


DRIPJOBS_ACTIONS: tuple[ActionSpec, ...] = tuple(_spec(action) for action in WRITEBACK_ACTIONS)
