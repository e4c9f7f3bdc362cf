"""Deal and project cards: a DripJobs stage change → one `POST /opportunities/upsert`.

Calls, by what the store knows:
- same content hash as the last sync → none
- otherwise → the pipeline list once per window (`_pipelines`, kept in the store), then one
  upsert with `pipelineId`, `contactId`, `pipelineStageId`, `status`, `monetaryValue`,
  `assignedTo` (`name` too when the card is new to us)

Status: what the event maps to (won/lost, `_opportunities`); with none, `open` when the card
moves to another stage of its pipeline and the status ghlsync last synced to it was
won/lost/abandoned (kept in the snapshot: `body.status` carries the last status sent, also
through upserts that set none). So a card reopens once; a stage change that keeps the last
stage (e.g. `deal.stage_changed` after `proposal.accepted`) and re-deliveries send no `open`.

The upsert is idempotent (GHL matches the contact's card in the pipeline), so a retry after a
lost answer cannot make a second card; there is no pending row to resolve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows._inflight import entity_lock
from ghlsync.engine.flows.to_ghl._contact_ref import contact_ghl_id
from ghlsync.engine.flows.to_ghl._model import (
    STALE,
    UNCHANGED,
    EntityOutcome,
    Run,
    is_stale,
    outcome,
    updated_at,
)
from ghlsync.engine.flows.to_ghl._pipelines import cached_stage, resolve
from ghlsync.engine.flows.to_ghl._plan import PlannedCall
from ghlsync.engine.flows.to_ghl._records import answer_id
from ghlsync.engine.state import _ghlrecords
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.ghl._errors import ServerError
from ghlsync.mapping import MappedEntity, content_hash
from ghlsync.mapping._opportunity_settings import CLOSED_STATUSES

ENTITY = "opportunity"
# The spec requires the follower fields on an upsert: "add nobody" leaves followers as they are.
KEEP_FOLLOWERS = {"followers": [], "isRemoveAllFollowers": False, "followersActionType": "add"}
_SENT = ("status", "monetaryValue", "assignedTo")
_NOT_IN_CARD = ("monetaryValue", "assignedTo")  # not in `ghl_records`: compared to our last
HELD = "GHL already holds this stage (two-way)"


async def sync_opportunity(
    run: Run, entity: MappedEntity, settings: Any, clock: Clock
) -> EntityOutcome:
    """Put the customer's card in the configured pipeline and stage (`settings`:
    `OpportunitySettings`)."""
    async with entity_lock(run.location_id, ENTITY, entity.source_id):
        return await _sync(run, entity, settings, clock)


async def _sync(run: Run, entity: MappedEntity, settings: Any, clock: Clock) -> EntityOutcome:
    start = run.calls
    row, state = await run.ledger.load(ENTITY, entity.source_id)
    known = row.ghl_id if row is not None and row.state == "confirmed" else None
    if is_stale(entity, state):
        return outcome(run, entity, "skipped", known, start, STALE)
    if known and state is not None and state.content_hash == content_hash(entity):
        return outcome(run, entity, "skipped", known, start, UNCHANGED)
    kind = str(entity.body["pipeline"])
    stage = entity.body.get("stage")
    pipeline_id, stage_id = await resolve(
        run.sender,
        run.location_id,
        clock,
        settings.pipeline(kind),
        stage,
        kind,
        engine=run.fields.engine,
    )
    body: dict[str, Any] = {
        "pipelineId": pipeline_id,
        "locationId": run.location_id,
        "contactId": await contact_ghl_id(run, entity),
    }
    if stage_id:
        body["pipelineStageId"] = stage_id
    body.update({k: entity.body[k] for k in _SENT if k in entity.body})
    if not known:
        body.setdefault("name", entity.defaults.get("name") or entity.source_id)
    last: Mapping[str, Any] = (state.snapshot.get("body") or {}) if known and state else {}
    reopens = _reopens(body, last)
    if reopens:
        body["status"] = "open"
    body.update(KEEP_FOLLOWERS)
    if (
        known
        and state is not None
        and await _already_in_ghl(run, entity, known, last, body, reopens=reopens)
    ):
        return outcome(run, entity, "skipped", known, start, HELD)
    call = PlannedCall(
        "POST", "/opportunities/upsert", body=body, purpose="upsert", idempotent=True
    )
    answer = await run.sender.send(call)
    ghl_id = answer_id(answer, "opportunity")
    if not ghl_id:
        if run.sender.live:
            raise ServerError("POST /opportunities/upsert answered without an id", body=answer)
        ghl_id = known or f"<new opportunity {entity.source_id}>"
    await run.ledger.confirm(
        ENTITY,
        entity.source_id,
        ghl_id,
        SyncState(content_hash(entity), updated_at(entity), _snapshot(body, last)),
    )
    live = run.sender.live and isinstance(answer, dict)
    created = bool(answer.get("new")) if live else not known
    return outcome(run, entity, "created" if created else "updated", ghl_id, start)


def _reopens(body: Mapping[str, Any], last: Mapping[str, Any]) -> bool:
    """True when this upsert sets no status, moves the card to another stage of the same
    pipeline, and the status ghlsync last synced to the card closed it."""
    return (
        "status" not in body
        and last.get("status") in CLOSED_STATUSES
        and "pipelineStageId" in body
        and body.get("pipelineId") == last.get("pipelineId")
        and body["pipelineStageId"] != last.get("pipelineStageId")
    )


def _snapshot(body: Mapping[str, Any], last: Mapping[str, Any]) -> dict[str, Any]:
    """What the sync state keeps: the body, with the last status sent carried over when this
    one set none (the card still has it, as far as ghlsync wrote)."""
    kept = dict(body)
    if "status" not in kept and last.get("status"):
        kept["status"] = last["status"]
    return {"body": kept, "contact_id": body["contactId"]}


async def _already_in_ghl(
    run: Run,
    entity: MappedEntity,
    known: str,
    last: Mapping[str, Any],
    body: dict[str, Any],
    *,
    reopens: bool,
) -> bool:
    """Two-way: our move_deal's echo (or a move GHL already shows) is recorded, not sent."""
    if run.twoway is None:
        return False
    if not await asyncio.to_thread(_held, run, known, last, body, reopens):
        return False
    # A reopen not sent is not synced: the last status sent stays the one to carry over.
    recorded = {k: v for k, v in body.items() if not (reopens and k == "status")}
    new_state = SyncState(content_hash(entity), updated_at(entity), _snapshot(recorded, last))
    await run.ledger.confirm(ENTITY, entity.source_id, known, new_state)
    return True


def _held(
    run: Run, ghl_id: str, last: Mapping[str, Any], body: Mapping[str, Any], reopens: bool
) -> bool:
    """Two-way: True when the card GHL last told us about (`ghl_records`, from its
    Opportunity* webhooks) is in this pipeline and stage with this status, and the amount
    and assignee are what we last sent. A DripJobs `deal.stage_changed` caused by our
    `move_deal` is then no GHL write (the same rule as for contacts: what GHL already holds is
    no change). An `open` derived here (`reopens`) is not compared: a card a GHL user moved
    while leaving it won stays as they left it."""
    if any(body.get(k) != last.get(k) for k in _NOT_IN_CARD):
        return False
    engine: sa.Engine = run.fields.engine
    with engine.connect() as conn:
        card = _ghlrecords.get(conn, run.location_id, ENTITY, ghl_id).fields
    if not card or any(card.get(k) != body.get(k) for k in ("pipelineId", "pipelineStageId")):
        return False
    return reopens or "status" not in body or card.get("status") == body["status"]


def moved_deal_stage(
    settings: Any,
    location_id: str,
    event: Mapping[str, Any],
    conn: sa.Connection | None = None,
) -> tuple[str, str] | None:
    """For a GHL `OpportunityStageUpdate`/`OpportunityStatusUpdate` payload: (`deal` or
    `project`, the DripJobs stage name) a `move_deal` write-back should carry, or None when
    the card is not in a configured pipeline or its stage is not known yet.

    The mapping of the way back (`flows.to_dripjobs._opportunity` calls it): the stage name
    comes from the pipeline list kept in the store (read through `conn`) and is reverse-mapped
    through `deal_stages` / `project_stages`.
    """
    pipeline_id, stage_id = event.get("pipelineId"), event.get("pipelineStageId")
    if not isinstance(pipeline_id, str) or not isinstance(stage_id, str):
        return None
    found = cached_stage(location_id, pipeline_id, stage_id, conn=conn)
    if found is None:
        return None
    pipeline_name, stage_name = found
    for kind in ("deal", "project"):
        configured = settings.pipeline(kind)
        if configured and configured.casefold() in (
            pipeline_name.casefold(),
            pipeline_id.casefold(),
        ):
            return kind, settings.dripjobs_stage(kind, stage_name)
    return None
