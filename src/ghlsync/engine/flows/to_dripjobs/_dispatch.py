"""The GHL-side entry point: one claimed `ghl_*` work row → a write-back decision.

The worker calls `sync_ghl` for work rows whose entity type starts with `ghl_` (GHL events
accepted by `POST /hooks/ghl`). The decision and the outbox rows it queues commit in one
transaction, so a crash leaves either both or neither; the outbox sender delivers them.
No GHL call is made, except reading the pipelines once when a moved card's stage is unknown.
`preview_ghl` shows what an event would queue, recording nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_dripjobs._decide import Decision, GHLWork, decide
from ghlsync.engine.flows.to_dripjobs._events import (
    GHL_PREFIX,
    OTHER_EVENT,
    record_of,
    source_time,
)
from ghlsync.engine.flows.to_dripjobs._opportunity import decide_opportunity
from ghlsync.engine.flows.to_ghl._model import EntityOutcome
from ghlsync.engine.flows.to_ghl._pipelines import cached_stage, ensure_stage
from ghlsync.engine.flows.to_ghl._plan import LiveSender, Requester
from ghlsync.mapping._opportunity_settings import OpportunitySettings
from ghlsync.mapping._writeback import EVENT_ENTITY, WritebackSettings
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_twoway import writeback_outbox

__all__ = ["is_ghl_work", "preview_ghl", "sync_ghl"]


def is_ghl_work(entity_type: str) -> bool:
    """True for a GHL-side work row (`ghl_contact`, `ghl_appointment`, ...)."""
    return entity_type.startswith(GHL_PREFIX)


async def sync_ghl(
    engine: sa.Engine,
    settings: WritebackSettings,
    clock: Clock,
    *,
    location_id: str,
    entity_type: str,
    ghl_id: str,
    events: Sequence[str],
    payload: Mapping[str, Any],
    version: float | None,
    opportunities: OpportunitySettings | None = None,
    client: Requester | None = None,
) -> list[EntityOutcome]:
    """Decide and record one GHL record's events; one outcome for the audit log.
    `opportunities`: the pipelines a moved card is reverse-mapped through (`move_deal`);
    `client`: reads the location's pipelines when a moved card's stage is not kept yet (the
    only GHL call of this side)."""
    work = GHLWork(location_id, entity_type[len(GHL_PREFIX) :], ghl_id, events, payload, version)
    if work.entity == OTHER_EVENT or not settings.enabled:  # taken for recipes only
        why = "no write-back: " + (
            "two-way sync does not take this event" if settings.enabled else "two-way sync is off"
        )
        return [EntityOutcome(entity_type, ghl_id, "skipped", ghl_id, 0, why)]
    if work.entity == "opportunity" and client is not None and _has_pipelines(opportunities):
        await _know_stage(engine, client, clock, location_id, payload)
    decision = await asyncio.to_thread(
        _decide_in_transaction, engine, work, settings, clock, opportunities
    )
    return [EntityOutcome(entity_type, ghl_id, decision.action, ghl_id, 0, decision.detail)]


def _has_pipelines(opportunities: OpportunitySettings | None) -> bool:
    return opportunities is not None and bool(
        opportunities.pipeline("deal") or opportunities.pipeline("project")
    )


async def _know_stage(
    engine: sa.Engine, client: Requester, clock: Clock, location_id: str, card: Mapping[str, Any]
) -> None:
    """Read the pipelines from GHL when the card's stage is not kept (after a restart on a
    fresh store, or a stage added in GHL), so the move is written back, not kept."""
    pipeline_id, stage_id = card.get("pipelineId"), card.get("pipelineStageId")
    if isinstance(pipeline_id, str) and isinstance(stage_id, str) and pipeline_id and stage_id:
        sender = LiveSender(client, location_id)
        await ensure_stage(sender, engine, location_id, clock, pipeline_id, stage_id)


def _decide_in_transaction(
    engine: sa.Engine,
    work: GHLWork,
    settings: WritebackSettings,
    clock: Clock,
    opportunities: OpportunitySettings | None = None,
) -> Decision:
    with begin_immediate(engine) as conn:
        if work.entity == "opportunity":
            return decide_opportunity(conn, work, settings, opportunities, now=clock.now())
        return decide(conn, work, settings, now=clock.now())


def preview_ghl(
    engine: sa.Engine,
    settings: WritebackSettings,
    event: Mapping[str, Any],
    *,
    now: float,
    opportunities: OpportunitySettings | None = None,
) -> dict[str, Any]:
    """What one GHL event would do now, given the store: the decision and the write-backs
    (action, URL, body) it would queue. Runs in a transaction that is rolled back: nothing
    is recorded and nothing is sent. A moved card (`Opportunity*`) is decided as the worker
    does, through `opportunities`."""
    kind = str(event.get("type") or "")
    if kind not in EVENT_ENTITY:
        raise ValueError(f"{kind or 'an untyped event'} is not a GHL event two-way sync takes")
    record_id = record_of(event).get("id")
    location = event.get("locationId")
    work = GHLWork(
        str(location or ""),
        EVENT_ENTITY[kind],
        str(record_id or ""),
        (kind,),
        event,
        source_time(event),
    )
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            if work.entity == "opportunity":
                decision = decide_opportunity(conn, work, settings, opportunities, now=now)
                decision.detail += _unread_stage(conn, work)
            else:
                decision = decide(conn, work, settings, now=now)
            bodies = _bodies(conn, [wb_id for _, wb_id, _ in decision.queued])
        finally:
            transaction.rollback()
    writebacks = [
        {"action": action, "status": status, "url": settings.url(action), "body": bodies.get(wb_id)}
        for action, wb_id, status in decision.queued
    ]
    return {"decision": decision.action, "detail": decision.detail, "writebacks": writebacks}


def _unread_stage(conn: sa.Connection, work: GHLWork) -> str:
    """A note when the card's stage is not in the store's pipeline list (the worker would read
    the pipelines from GHL first; a preview sends nothing)."""
    pipeline_id, stage_id = work.payload.get("pipelineId"), work.payload.get("pipelineStageId")
    if not isinstance(pipeline_id, str) or not isinstance(stage_id, str):
        return ""
    if cached_stage(work.location_id, pipeline_id, stage_id, conn=conn) is not None:
        return ""
    return (
        "; this store has not read the location's pipelines, so the stage name is unknown "
        "here (the worker reads them from GHL first; preview with --store after a sync)"
    )


def _bodies(conn: sa.Connection, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(writeback_outbox.c.id, writeback_outbox.c.body).where(
            writeback_outbox.c.id.in_(ids)
        )
    )
    return {row.id: json.loads(row.body) for row in rows}
