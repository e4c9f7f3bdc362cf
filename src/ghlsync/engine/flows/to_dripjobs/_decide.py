"""GHL event → write-back decision, for contacts and appointments.

For one GHL record (its work row's merged event payload), in one transaction:

1. order: a record deleted in GHL stays deleted (a late update is skipped); an event older
   than the newest applied (`ghl_records.version`) is skipped;
2. echo: while a write of ours may be in flight, wait (`WriteInFlightError`); then a field
   whose value is what we last wrote, or what GHL already had, is not a change; an event
   without changes is our echo (or a no-op) and produces nothing;
3. triggers (`writeback.triggers`, `_triggers`): `unlinked` (a record new to DripJobs: not ours, not
   linked), `changed` (a watched field changed), `tag_added` (a tag with the prefix was
   added; the rest is the stage), `always` → an outbox row (write-ahead, deduplicated);
4. what no action takes (a phone changed in GHL, a delete) is kept: `ghl_records.pending`
   (weighed by the owner rules against later DripJobs changes) and `ghl_changes` (`status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.flows.to_dripjobs._compare import norm, same
from ghlsync.engine.flows.to_dripjobs._echo import (
    WriteInFlightError,
    linked_sources,
    write_in_flight,
    written,
)
from ghlsync.engine.flows.to_dripjobs._events import record_of
from ghlsync.engine.flows.to_dripjobs._triggers import queue_writebacks
from ghlsync.engine.flows.to_dripjobs._work import Decision, GHLWork
from ghlsync.engine.state import _ghlrecords
from ghlsync.engine.state._ghlrecords import GHLRecord
from ghlsync.mapping._writeback import WritebackSettings

__all__ = ["Decision", "GHLWork", "decide"]

NO_ACTION = {
    "contact": "DripJobs has no action that updates a customer's fields",
    "appointment": "DripJobs has no action for this appointment change",
    "task": "DripJobs has no action that takes a task",
    "note": "DripJobs has no action that takes a note",
}
CHILD_FIELDS = {"task": ("title", "body", "dueDate", "assignedTo"), "note": ("body",)}
NO_DELETE = "DripJobs has no action that deletes a record"


def watched(settings: WritebackSettings, entity: str) -> list[str]:
    """The GHL fields compared for changes (the write-back field rules' sources)."""
    if entity == "contact":
        return [*(rule.source for rule in settings.fields.contact), "tags"]
    if entity == "appointment":
        return [rule.source for rule in settings.fields.appointment]
    return list(CHILD_FIELDS.get(entity, ()))


def decide(
    conn: sa.Connection, work: GHLWork, settings: WritebackSettings, *, now: float
) -> Decision:
    """Decide and record (in the caller's transaction) what one GHL record's events mean."""
    record = _ghlrecords.get(conn, work.location_id, work.entity, work.ghl_id)
    if any(event.endswith("Delete") for event in work.events):
        return _deleted(conn, work, record, now)
    if record.deleted_at is not None and (
        work.version is None or work.version <= record.deleted_at
    ):
        return Decision("skipped", "deleted in GHL: a late update does not bring it back")
    if record.version is not None and work.version is not None and work.version < record.version:
        return Decision("skipped", "older than the GHL version already seen")
    values = record_of(work.payload)
    sources = linked_sources(conn, work.location_id, work.entity, work.ghl_id)
    if write_in_flight(conn, work.location_id, work.entity, sources, values):
        raise WriteInFlightError(f"a write of ours to GHL {work.entity} {work.ghl_id} is in flight")
    names = watched(settings, work.entity)
    ours = written(conn, work.location_id, work.entity, sources)
    baseline = bool(sources) and not record.exists  # first sight of a record we made
    changed = _changes(names, values, record.fields, ours, baseline)
    added_tags = _added_tags(values, record.fields, ours)
    record.fields.update({n: values[n] for n in names if n in values})
    if work.version is not None:
        record.version = max(record.version or work.version, work.version)
    decision = queue_writebacks(conn, work, settings, record, sources, changed, added_tags, now)
    _keep(conn, work, record, changed, decision, now)
    _ghlrecords.put(conn, work.location_id, work.entity, work.ghl_id, record, now=now)
    if not changed and not decision.queued:
        decision.action, decision.detail = "echo", "no change but our own writes"
    return decision


def _changes(
    names: list[str],
    values: Mapping[str, Any],
    prior: Mapping[str, Any],
    ours: Mapping[str, Any],
    baseline: bool,
) -> dict[str, Any]:
    """Fields whose GHL value is neither what GHL had nor what we wrote."""
    changed = {}
    for name in names:
        if name not in values or name == "tags":
            continue
        value = values[name]
        if same(name, value, ours.get(name)) or (name not in ours and baseline):
            continue
        if name in prior and same(name, value, prior[name]):
            continue
        if name not in prior and name not in ours and norm(name, value) is None:
            continue
        changed[name] = value
    return changed


def _added_tags(
    values: Mapping[str, Any], prior: Mapping[str, Any], ours: Mapping[str, Any]
) -> list[str]:
    now_tags = set(norm("tags", values.get("tags")) or ())
    known = set(norm("tags", prior.get("tags")) or ()) | set(norm("tags", ours.get("tags")) or ())
    return sorted(now_tags - known)


def _keep(
    conn: sa.Connection,
    work: GHLWork,
    record: GHLRecord,
    changed: Mapping[str, Any],
    decision: Decision,
    now: float,
) -> None:
    """GHL-side changes no write-back carried: pending (owner rules) and `ghl_changes`."""
    if not changed or (decision.queued and not record.exists):
        return  # a new record's write-back carries all of it
    at = work.version if work.version is not None else now
    for name, value in changed.items():
        record.pending[name] = {"value": value, "at": at}
    decision.kept = dict(changed)
    _ghlrecords.keep_change(
        conn,
        work.location_id,
        work.entity,
        work.ghl_id,
        event=work.events[-1],
        detail=dict(changed),
        reason=NO_ACTION.get(work.entity, NO_ACTION["contact"]),
        changed_at=at,
        now=now,
    )
    if not decision.queued:
        decision.action, decision.detail = "kept", "changed in GHL: " + ", ".join(sorted(changed))


def _deleted(conn: sa.Connection, work: GHLWork, record: GHLRecord, now: float) -> Decision:
    """A delete wins over late updates: a tombstone, and the change kept for `status`."""
    at = work.version if work.version is not None else now
    if record.deleted_at is not None:
        return Decision("skipped", "already deleted in GHL")
    record.deleted_at = at
    record.version = max(record.version or at, at)
    _ghlrecords.put(conn, work.location_id, work.entity, work.ghl_id, record, now=now)
    _ghlrecords.keep_change(
        conn,
        work.location_id,
        work.entity,
        work.ghl_id,
        event=next(e for e in work.events if e.endswith("Delete")),
        detail={"deleted": True},
        reason=NO_DELETE,
        changed_at=at,
        now=now,
    )
    return Decision("kept", "deleted in GHL; " + NO_DELETE)
