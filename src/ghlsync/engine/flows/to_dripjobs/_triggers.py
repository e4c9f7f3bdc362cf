"""Write-back triggers: which GHL event, under which condition, queues which action, and
the flat fields of that write-back (`writeback.fields`), written ahead to the outbox.

`unlinked` creates fire only for a record DripJobs does not have; updates and deal moves only
for one it has (linked, or its create queued), since GHL's webhooks may arrive out of order
and a create carries the current values. Each write-back is deduplicated by a key (one
`create_lead` per GHL contact; an update per change), and the write-backs one decision queues
are ordered (`order`), so the outbox sends them in that order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.flows.to_dripjobs._echo import linked_sources, written
from ghlsync.engine.flows.to_dripjobs._events import record_of
from ghlsync.engine.flows.to_dripjobs._work import Decision, GHLWork
from ghlsync.engine.outbox._store import enqueue
from ghlsync.engine.state import _ghlrecords
from ghlsync.engine.state._ghlrecords import GHLRecord
from ghlsync.ghl._errors import RetriableError
from ghlsync.mapping._writeback import Trigger, WritebackSettings
from ghlsync.store._tables_twoway import writeback_outbox

__all__ = [
    "PERSON_FIELDS",
    "ContactNotSeenError",
    "flat_data",
    "known_person",
    "queue_writebacks",
]


class ContactNotSeenError(RetriableError):
    """An appointment's write-back needs its customer's details, and GHL's event for that
    contact has not been processed yet: retried (the contact's work runs first)."""


def queue_writebacks(
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
        person = _person(conn, location_id, contact)
        if not person.get("email") and not person.get("phone"):
            # Its ContactCreate is still on its way (webhooks reorder): after it, not without.
            raise ContactNotSeenError(
                f"GHL contact {contact} of this appointment has not been seen yet"
            )
        _fill(data, _person_rules(settings), person)


PERSON_FIELDS = frozenset({"email", "phone", "first_name", "last_name"})


def known_person(
    conn: sa.Connection, settings: WritebackSettings, location_id: str, contact: str
) -> dict[str, str]:
    """The flat person fields (`PERSON_FIELDS`, through the contact field rules) of a GHL
    contact as ghlsync knows it: what GHL told us, else what we wrote to it. What a write-back
    names its customer by (the two-way appointment write-backs and the recipes' steps)."""
    data: dict[str, str] = {}
    _fill(data, _person_rules(settings), _person(conn, location_id, contact))
    return data


def _person(conn: sa.Connection, location_id: str, contact: str) -> dict[str, Any]:
    record = _ghlrecords.get(conn, location_id, "contact", contact)
    sources = linked_sources(conn, location_id, "contact", contact)
    return {**written(conn, location_id, "contact", sources), **record.fields}


def _person_rules(settings: WritebackSettings) -> list[Any]:
    return [r for r in settings.fields.contact if r.target in PERSON_FIELDS]


def _fill(data: dict[str, str], rules: Sequence[Any], values: Mapping[str, Any]) -> None:
    for rule in rules:
        value = values.get(rule.source)
        if value not in (None, "", []):
            data.setdefault(rule.target, str(value))
