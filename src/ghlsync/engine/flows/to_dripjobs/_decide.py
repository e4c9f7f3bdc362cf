"""GHL event → write-back decision, for contacts and appointments.

For one GHL record (its work row's merged event payload), in one transaction:

1. order: a record deleted in GHL stays deleted (a late update is skipped); an event older
   than the newest applied (`ghl_records.version`) is skipped;
2. echo: while a write of ours may be in flight, wait (`WriteInFlightError`); then a field
   whose value is what we last wrote, or what GHL already had, is not a change; an event
   without changes is our echo (or a no-op) and produces nothing;
3. triggers (`writeback.triggers`): `unlinked` (a record new to DripJobs: not ours, not
   linked), `changed` (a watched field changed), `tag_added` (a tag with the prefix was
   added; the rest is the stage), `always` → an outbox row (write-ahead, deduplicated);
4. what no action takes (a phone changed in GHL, a delete) is kept: `ghl_records.pending`
   (weighed by the owner rules against later DripJobs changes) and `ghl_changes` (`status`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from ghlsync.engine.outbox._store import enqueue
from ghlsync.engine.state import _ghlrecords
from ghlsync.engine.state._ghlrecords import GHLRecord
from ghlsync.ghl._errors import RetriableError
from ghlsync.mapping._writeback import Trigger, WritebackSettings
from ghlsync.store._tables_twoway import writeback_outbox

__all__ = ["Decision", "GHLWork", "decide"]

NO_ACTION = {
    "contact": "DripJobs has no action that updates a customer's fields",
    "appointment": "DripJobs has no action for this appointment change",
    "task": "DripJobs has no action that takes a task",
    "note": "DripJobs has no action that takes a note",
}
CHILD_FIELDS = {"task": ("title", "body", "dueDate", "assignedTo"), "note": ("body",)}
NO_DELETE = "DripJobs has no action that deletes a record"


class ContactNotSeenError(RetriableError):
    """An appointment's write-back needs its customer's details, and GHL's event for that
    contact has not been processed yet: retried (the contact's work runs first)."""


@dataclass(frozen=True, slots=True)
class GHLWork:
    """One claimed GHL-side work row, as the decision needs it."""

    location_id: str
    entity: str  # contact | appointment | task | note
    ghl_id: str
    events: Sequence[str]
    payload: Mapping[str, Any]
    version: float | None


@dataclass(slots=True)
class Decision:
    """What the decision did: `action` for the audit log, the write-backs it queued."""

    action: str
    detail: str = ""
    queued: list[tuple[str, str, str]] = field(default_factory=list)  # (action, id, status)
    kept: dict[str, Any] = field(default_factory=dict)


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
    decision = _triggers(conn, work, settings, record, sources, changed, added_tags, now)
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


def _triggers(
    conn: sa.Connection,
    work: GHLWork,
    settings: WritebackSettings,
    record: GHLRecord,
    sources: list[str],
    changed: Mapping[str, Any],
    added_tags: list[str],
    now: float,
) -> Decision:
    decision = Decision("synced")
    known = None  # is the record in DripJobs (linked, or a create write-back queued)?
    for trigger in settings.triggers:
        if trigger.event not in work.events:
            continue
        if trigger.when != "unlinked":
            # An update or a move needs the record in DripJobs first: GHL's webhooks reorder,
            # and its create (which carries the current values) may still be on its way.
            known = known if known is not None else _in_dripjobs(conn, work, sources)
            if not known and not decision.queued:
                continue
        for key, extra in _fired(trigger, work, sources, changed, added_tags):
            data = flat_data(settings, work, record, extra)
            if work.entity == "appointment":
                _add_person(conn, settings, work.location_id, data)
            queued = enqueue(
                conn,
                location_id=work.location_id,
                action=trigger.action,
                dedupe_key=key,
                ghl_entity=work.entity,
                ghl_id=work.ghl_id,
                data=data,
                url=settings.url(trigger.action),
                now=now,
                order=len(decision.queued),
            )
            decision.queued.append((trigger.action, queued.id, queued.status))
    if decision.queued:
        decision.action = "written_back"
        decision.detail = ", ".join(f"{a} {i} ({s})" for a, i, s in decision.queued)
    return decision


CREATE_ACTIONS = ("create_lead", "create_appointment_request")


def _in_dripjobs(conn: sa.Connection, work: GHLWork, sources: list[str]) -> bool:
    """True when DripJobs has the record: linked to a DripJobs id, or created by a write-back."""
    if sources:
        return True
    o = writeback_outbox.c
    row = conn.execute(
        sa.select(o.id)
        .where(
            o.location_id == work.location_id,
            o.ghl_entity == work.entity,
            o.ghl_id == work.ghl_id,
            o.action.in_(CREATE_ACTIONS),
        )
        .limit(1)
    ).first()
    return row is not None


def _fired(
    trigger: Trigger,
    work: GHLWork,
    sources: list[str],
    changed: Mapping[str, Any],
    added_tags: list[str],
) -> list[tuple[str, dict[str, str]]]:
    """(dedupe key, extra data) per write-back the trigger makes now."""
    base = f"{trigger.action}:{work.ghl_id}"
    if trigger.when == "unlinked":
        return [] if sources else [(base, {})]
    if trigger.when == "changed":
        hit = {name: changed[name] for name in trigger.fields if name in changed}
        return [(f"{base}:{_digest(hit, work.version)}", {})] if hit else []
    if trigger.when == "tag_added":
        prefix = (trigger.prefix or "").lower()
        stages = [t[len(prefix) :] for t in added_tags if t.startswith(prefix) and t != prefix]
        return [(f"{base}:{s}:{_digest({}, work.version)}", {"stage": s}) for s in stages]
    return [(f"{base}:{_digest(dict(record_of(work.payload)), work.version)}", {})]


def _digest(values: Mapping[str, Any], version: float | None) -> str:
    text = json.dumps([values, version], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flat_data(
    settings: WritebackSettings, work: GHLWork, record: GHLRecord, extra: Mapping[str, str]
) -> dict[str, str]:
    """The write-back's flat fields from what GHL holds (field rules), plus the ids."""
    values = {**record.fields, **record_of(work.payload)}
    data: dict[str, str] = {}
    if work.entity == "contact":
        data["ghl_contact_id"] = work.ghl_id
        _fill(data, settings.fields.contact, values)
    else:
        data["ghl_appointment_id"] = work.ghl_id
        contact = values.get("contactId")
        if isinstance(contact, str) and contact:
            data["ghl_contact_id"] = contact
        _fill(data, settings.fields.appointment, values)
    data.update(extra)
    return data


def _add_person(
    conn: sa.Connection, settings: WritebackSettings, location_id: str, data: dict[str, str]
) -> None:
    """An appointment's write-back names its customer: the GHL contact's known fields."""
    contact = data.get("ghl_contact_id")
    if contact:
        record = _ghlrecords.get(conn, location_id, "contact", contact)
        sources = linked_sources(conn, location_id, "contact", contact)
        person = {**written(conn, location_id, "contact", sources), **record.fields}
        if not person.get("email") and not person.get("phone"):
            # Its ContactCreate is still on its way (webhooks reorder): after it, not without.
            raise ContactNotSeenError(
                f"GHL contact {contact} of this appointment has not been seen yet"
            )
        rules = [r for r in settings.fields.contact if r.target in PERSON_FIELDS]
        _fill(data, rules, person)


PERSON_FIELDS = frozenset({"email", "phone", "first_name", "last_name"})


def _fill(data: dict[str, str], rules: Sequence[Any], values: Mapping[str, Any]) -> None:
    for rule in rules:
        value = values.get(rule.source)
        if value not in (None, "", []):
            data.setdefault(rule.target, str(value))


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
