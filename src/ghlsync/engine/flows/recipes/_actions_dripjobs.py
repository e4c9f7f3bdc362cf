"""DripJobs write-back actions: a step queues one signed write-back in the durable outbox.

The outbox row's dedupe key is the step's idempotency key, so a step run twice (a retry, a
replayed dead letter) finds its row instead of queueing a second one; the outbox's sender
delivers it to the Zap catch hook configured under `writeback.actions.<action>.url`
(docs/two-way.md). Without a URL the row is recorded as skipped, as for the flows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ghlsync.engine.flows.recipes._context import StepContext, StepResult
from ghlsync.engine.flows.recipes._spec import ActionSpec, InputSpec
from ghlsync.engine.outbox._store import enqueue
from ghlsync.mapping._writeback import WRITEBACK_ACTIONS
from ghlsync.store._engine import begin_immediate

_FIELDS: dict[str, tuple[tuple[str, bool, str], ...]] = {
    "create_lead": (
        ("first_name", False, "the lead's first name"),
        ("last_name", False, ""),
        ("email", False, ""),
        ("phone", False, ""),
        ("address", False, ""),
        ("lead_source", False, ""),
        ("notes", False, ""),
    ),
    "create_appointment_request": (
        ("customer_id", False, "the DripJobs customer"),
        ("appointment_title", False, ""),
        ("appointment_start", True, "date-time (a relative date works)"),
        ("appointment_end", False, ""),
        ("email", False, ""),
        ("phone", False, ""),
    ),
    "update_appointment": (
        ("appointment_id", True, "the DripJobs appointment"),
        ("appointment_start", False, ""),
        ("appointment_end", False, ""),
        ("appointment_status", False, ""),
    ),
    "move_deal": (
        ("deal_id", False, "the DripJobs deal (default: the event's deal_id)"),
        ("stage", True, "the DripJobs stage name"),
        ("email", False, ""),
        ("phone", False, ""),
    ),
}


def _writer(action: str):  # type: ignore[no-untyped-def]
    async def run(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
        data = {k: str(v) for k, v in inputs.items() if v not in (None, "")}
        known = {f for f, _, _ in _FIELDS[action]}
        for name in ("deal_id", "customer_id", "email", "phone"):
            if name in known and name not in data and ctx.fields.get(name):
                data[name] = str(ctx.fields[name])
        if not ctx.live:
            return StepResult(None, f"write-back {action} {data}")
        url = ctx.config.writeback.url(action)
        queued = await asyncio.to_thread(_queue, ctx, action, data, url)
        return StepResult(queued, f"write-back {action} queued")

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


def _spec(action: str) -> ActionSpec:
    inputs = tuple(
        InputSpec(name, "date" if name.endswith(("_start", "_end")) else "text", req, words)
        for name, req, words in _FIELDS[action]
    )
    words = action.replace("_", " ")
    return ActionSpec(
        f"dripjobs.{action}",
        "dripjobs",
        f"DripJobs: {words} (signed write-back to its Zap catch hook)",
        inputs,
        f"write-back {action}",
        _writer(action),
    )


DRIPJOBS_ACTIONS: tuple[ActionSpec, ...] = tuple(
    _spec(action) for action in WRITEBACK_ACTIONS if action in _FIELDS
)
