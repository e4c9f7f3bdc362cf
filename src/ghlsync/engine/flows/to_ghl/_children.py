"""Task, note and appointment flow: create once under the right contact, then only changes.

Calls, by what the store knows:
- confirmed, same content hash  → none
- confirmed, changed            → one PUT of the changed fields (a task whose only change is
                                  `completed` goes to `.../completed`; cancel = PUT
                                  `appointmentStatus: cancelled`)
- unknown                       → pending row (committed) → one POST
- pending                       → list the contact's records, match what `pending_body` says
                                  (task: title + dueDate, note: body, appointment: startTime +
                                  calendarId), skipping records mapped to another DripJobs id
                                  → found: PUT only what it lacks; not found: the POST above
- delete                        → one DELETE (404 = already gone)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from ghlsync.engine.flows._inflight import entity_lock
from ghlsync.engine.flows.to_dripjobs._owners import not_held
from ghlsync.engine.flows.to_ghl._contact_ref import contact_ghl_id
from ghlsync.engine.flows.to_ghl._kinds import Kind
from ghlsync.engine.flows.to_ghl._model import (
    STALE,
    UNCHANGED,
    UNKNOWN,
    EntityOutcome,
    Run,
    is_stale,
    outcome,
    updated_at,
)
from ghlsync.engine.flows.to_ghl._plan import changed_keys
from ghlsync.engine.flows.to_ghl._records import answer_id, matches, records, same
from ghlsync.engine.state._idmap import IdMapRow
from ghlsync.engine.state._syncstate import DELETED, SyncState
from ghlsync.ghl._errors import NotFoundError, ServerError
from ghlsync.mapping import MappedEntity, content_hash

# Request-only options the preset may add (e.g. `ignoreFreeSlotValidation` on appointment
# updates): not part of the object, so a cancel's snapshot lacks them and a later no-op
# update must not count them as a change.
REQUEST_OPTIONS = frozenset({"ignoreFreeSlotValidation", "toNotify", "ignoreDateRange"})


async def sync_child(run: Run, kind: Kind, entity: MappedEntity) -> EntityOutcome:
    """Bring one task, note or appointment in GHL to the mapped content.

    One sync per entity at a time in this process: a pending row this process is still
    creating is waited for, never looked up.
    """
    async with entity_lock(run.location_id, kind.entity_type, entity.source_id):
        return await _sync(run, kind, entity)


async def _sync(run: Run, kind: Kind, entity: MappedEntity) -> EntityOutcome:
    start = run.calls
    row, state = await run.ledger.load(kind.entity_type, entity.source_id)
    if is_stale(entity, state):
        return outcome(run, entity, "skipped", row.ghl_id if row else None, start, STALE)
    if entity.action == "delete":
        return await _delete(run, kind, entity, row, state, start)
    body = dict(entity.body)
    if row is not None and row.state == "confirmed" and row.ghl_id:
        contact_id = _contact_of(state) or (await contact_ghl_id(run, entity))
        if state is not None and state.content_hash == content_hash(entity):
            return outcome(run, entity, "skipped", row.ghl_id, start, UNCHANGED)
        last = state.snapshot.get("body", {}) if state else {}
        try:
            action = await _update(
                run, kind, entity, contact_id, row.ghl_id, last, body, mapped=True
            )
            return outcome(run, entity, action, row.ghl_id, start)
        except NotFoundError:  # deleted in GHL meanwhile: create it again
            await run.ledger.forget(kind.entity_type, entity.source_id)
            row = None
    if row is None and entity.action == "cancel":
        return outcome(run, entity, "skipped", None, start, UNKNOWN)  # never create a cancelled one
    contact_id = await contact_ghl_id(run, entity)
    if row is not None and row.state == "pending":
        found = await _find(run, kind, entity, contact_id, row.pending_body or {})
        if found is not None:
            ghl_id = str(found["id"])
            known = {k: v for k, v in body.items() if same(v, found.get(k))}
            await _update(run, kind, entity, contact_id, ghl_id, known, body)
            return outcome(run, entity, "created", ghl_id, start)
    ghl_id = await _create(run, kind, entity, contact_id, body)
    return outcome(run, entity, "created", ghl_id, start)


async def _update(
    run: Run,
    kind: Kind,
    entity: MappedEntity,
    contact_id: str,
    ghl_id: str,
    last: Mapping[str, Any],
    body: dict[str, Any],
    *,
    mapped: bool = False,
) -> str:
    """Send the changed fields (if any), record the state; returns the outcome's action.

    `mapped`: the ID map already holds `ghl_id`, confirmed: only the state is recorded (with
    the worker, written when the item is settled); else the mapping is confirmed with it."""
    keys = {k for k in changed_keys(last, body) if k in body} - REQUEST_OPTIONS
    if keys:  # options only steer how GHL takes a write: they ride along, never alone
        keys |= REQUEST_OPTIONS & set(body)
    changed = {k: body[k] for k in keys}
    if run.twoway is not None and changed:  # two-way: what GHL already holds is no change
        changed = await asyncio.to_thread(
            not_held,
            run.fields.engine,
            run.location_id,
            kind.entity_type,
            ghl_id,
            changed,
            run.twoway,
        )
        if not (set(changed) - REQUEST_OPTIONS):
            changed = {}
    call = kind.update(contact_id, ghl_id, changed)
    if call.body:
        await run.sender.send(call)
    state = _state(entity, body, contact_id)
    if mapped:
        await run.ledger.record(kind.entity_type, entity.source_id, state)
    else:
        await run.ledger.confirm(kind.entity_type, entity.source_id, ghl_id, state)
    if call.purpose == "status":
        return "completed" if changed["completed"] else "reopened"
    if entity.action == "cancel":
        return "cancelled"
    return "completed" if entity.action == "complete" else "updated"


async def _create(
    run: Run, kind: Kind, entity: MappedEntity, contact_id: str, body: dict[str, Any]
) -> str:
    """Pending row (committed), one POST, confirm."""
    create_body = entity.request_body("create")
    call = kind.create(contact_id, create_body, run.location_id, run.calendar_id)
    await run.ledger.mark_pending(kind.entity_type, entity.source_id, dict(call.body or {}))
    answer = await run.sender.send(call)
    ghl_id = answer_id(answer, kind.wrapper, "event")
    if not ghl_id:
        if run.sender.live:  # the pending row stays; the retry finds it by lookup
            raise ServerError(f"{call.method} {call.path} answered without an id", body=answer)
        ghl_id = f"<new {kind.entity_type} {entity.source_id}>"
    await run.ledger.confirm(
        kind.entity_type, entity.source_id, ghl_id, _state(entity, body, contact_id)
    )
    return ghl_id


async def _find(
    run: Run, kind: Kind, entity: MappedEntity, contact_id: str, pending: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The record a lost create made: the contact's record matching the pending body."""
    answer = await run.sender.send(kind.list_(contact_id))
    for record in records(answer, *kind.list_keys):
        ghl_id = record.get("id")
        if not ghl_id or not matches(record, pending, kind.match_keys):
            continue
        owners = await run.ledger.owners(kind.entity_type, str(ghl_id))
        if not owners or owners == [entity.source_id]:
            return record
    return None


async def _delete(
    run: Run,
    kind: Kind,
    entity: MappedEntity,
    row: IdMapRow | None,
    state: SyncState | None,
    start: int,
) -> EntityOutcome:
    """Delete it in GHL (resolving a pending create first), then forget it."""
    if row is None:
        return outcome(run, entity, "skipped", None, start, UNKNOWN)
    ghl_id, contact_id = row.ghl_id, _contact_of(state)
    if row.state == "pending":
        contact_id = await contact_ghl_id(run, entity)
        found = await _find(run, kind, entity, contact_id, row.pending_body or {})
        ghl_id = str(found["id"]) if found else None
    if ghl_id:
        with contextlib.suppress(NotFoundError):  # already gone: the goal is reached
            await run.sender.send(
                kind.delete(contact_id or (await contact_ghl_id(run, entity)), ghl_id)
            )
    await run.ledger.forget(kind.entity_type, entity.source_id)
    # A tombstone keeps the delete's timestamp, so an older update arriving late is skipped.
    await run.ledger.record(
        kind.entity_type, entity.source_id, SyncState(DELETED, updated_at(entity))
    )
    return outcome(run, entity, "deleted", ghl_id, start)


def _state(entity: MappedEntity, body: Mapping[str, Any], contact_id: str) -> SyncState:
    snapshot = {"body": dict(body), "contact_id": contact_id}
    return SyncState(content_hash(entity), updated_at(entity), snapshot)


def _contact_of(state: SyncState | None) -> str | None:
    value = state.snapshot.get("contact_id") if state else None
    return str(value) if value else None
