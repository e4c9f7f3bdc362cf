"""A DripJobs event caused by our own write-back links; it writes nothing to GHL.

Appointments likewise: after `create_appointment_request`, DripJobs fires
`appointment.scheduled` for the request we made; `link_echo` finds our write-back for that
customer's GHL contact (the latest not linked yet) and links the DripJobs appointment to the
GHL appointment it came from.

After a `create_lead` write-back, DripJobs fires "New Lead Created" (`lead.created`) for the
lead we made. That event names a DripJobs customer ghlsync has never seen; without this
step the contact flow would create (or upsert into) the GHL contact the lead came from: an
echo write. Instead, before the contact flow runs, `link_echo` finds the GHL contact our
`create_lead` was for (by the `ghl_contact_id` we sent, then by email, then by phone among
recent ones) and records the ID map and the sync state as if that contact had just been
synced: the flow then finds it unchanged and makes no call, and no second write-back is
queued (the GHL side sees the contact linked).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_dripjobs._compare import same
from ghlsync.engine.flows.to_ghl._contact_stamps import advanced, latest
from ghlsync.engine.outbox._store import find_lead
from ghlsync.engine.state import _ghlrecords, _idmap, _syncstate
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.mapping import MappedEvent, Mapper, content_hash
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_twoway import writeback_outbox

__all__ = ["ECHO_WINDOW", "link_echo"]

ECHO_WINDOW = 7 * 86400.0  # seconds: how old a create_lead may be to match by email/phone


async def link_echo(
    engine: sa.Engine,
    mapper: Mapper,
    clock: Clock,
    *,
    location_id: str,
    source_id: str,
    event: str,
    payload: Mapping[str, Any],
) -> str | None:
    """Link a DripJobs customer to the GHL contact of our write-back; its GHL id, or None."""
    return await asyncio.to_thread(
        _link, engine, mapper, clock, location_id, source_id, event, payload
    )


def _link(
    engine: sa.Engine,
    mapper: Mapper,
    clock: Clock,
    location_id: str,
    source_id: str,
    event: str,
    payload: Mapping[str, Any],
) -> str | None:
    now = clock.now()
    with begin_immediate(engine) as conn:
        mapped = mapper.map(event, payload)
        if any(e.type == "appointment" and e.source_id == source_id for e in mapped.entities):
            return _link_appointment(conn, mapped, location_id, source_id, now)
        if _idmap.get(conn, location_id, "contact", source_id) is not None:
            return None
        ghl_contact = payload.get("ghl_contact_id")
        found = find_lead(
            conn,
            location_id,
            ghl_contact_id=str(ghl_contact) if ghl_contact else None,
            email=payload.get("email"),
            phone=payload.get("phone"),
            since=now - ECHO_WINDOW,
        )
        if found is None:
            return None
        ghl_id, sent = found
        # The sync state is what DripJobs got from GHL (the write-back's data), not this
        # event's payload: a DripJobs change merged into the same work row (a user edited the
        # new lead before ghlsync saw lead.created) is then still a change, and is synced.
        base = {k: v for k, v in sent.items() if k != "ghl_contact_id"}
        sent_payload = {**base, _id_field(mapper, event): source_id}
        entity = next(e for e in mapper.map(event, sent_payload).entities if e.type == "contact")
        record = _ghlrecords.get(conn, location_id, "contact", ghl_id)
        stamps = advanced(entity, None)
        snapshot = {
            "body": entity.request_body("update"),
            "custom_fields": dict(entity.custom_fields),
            # GHL's tags and the event's own (e.g. `lead`): ours, not a DripJobs change to send.
            "tags": sorted(
                {str(t).lower() for t in record.fields.get("tags") or ()}
                | {t.lower() for t in entity.tags_add}
            ),
            "stamps": stamps,
        }
        state = SyncState(content_hash(entity), latest(stamps), snapshot)
        _idmap.put(
            conn,
            location_id,
            "contact",
            source_id,
            ghl_id=ghl_id,
            state="confirmed",
            pending_body=None,
            now=now,
        )
        _syncstate.put(conn, location_id, "contact", source_id, state, now=now)
        return ghl_id


def _id_field(mapper: Mapper, event: str) -> str:
    """The payload field holding the DripJobs customer id of `event` (e.g. customer_id)."""
    return str(mapper.config.events[event].id)


def _link_appointment(
    conn: sa.Connection, mapped: MappedEvent, location_id: str, source_id: str, now: float
) -> str | None:
    """Link a DripJobs appointment to the GHL appointment of our create_appointment_request."""
    if _idmap.get(conn, location_id, "appointment", source_id) is not None:
        return None
    entity = next(e for e in mapped.entities if e.type == "appointment")
    parent = entity.parent.source_id if entity.parent is not None else None
    contact = _idmap.get(conn, location_id, "contact", parent) if parent else None
    if contact is None or not contact.ghl_id:
        return None
    start = entity.body.get("startTime")
    ghl_id = _requested_appointment(conn, location_id, contact.ghl_id, start, now - ECHO_WINDOW)
    if ghl_id is None:
        return None
    body = dict(entity.body)
    snapshot = {"body": body, "contact_id": contact.ghl_id}
    stamp = entity.source_updated_at.timestamp() if entity.source_updated_at else None
    state = SyncState(content_hash(entity), stamp, snapshot)
    _idmap.put(
        conn,
        location_id,
        "appointment",
        source_id,
        ghl_id=ghl_id,
        state="confirmed",
        pending_body=None,
        now=now,
    )
    _syncstate.put(conn, location_id, "appointment", source_id, state, now=now)
    return ghl_id


def _requested_appointment(
    conn: sa.Connection, location_id: str, ghl_contact: str, start: object, since: float
) -> str | None:
    """The GHL appointment of this contact we asked DripJobs to create and that is not linked
    to a DripJobs appointment yet: the one whose write-backs (request or a later update) had
    this appointment's start, else the newest. So an appointment a DripJobs user booked
    meanwhile at another time is not taken for ours while ours is around."""
    o = writeback_outbox.c
    rows = conn.execute(
        sa.select(o.ghl_id, o.action, o.body)
        .where(
            o.location_id == location_id,
            # A GHL appointment's write-backs; a recipe step's are about its contact, with no
            # GHL appointment to link to.
            o.ghl_entity == "appointment",
            o.action.in_(("create_appointment_request", "update_appointment")),
            o.created_at >= since,
        )
        .order_by(o.created_at.desc())
    )
    starts: dict[str, list[object]] = {}
    requested: list[str] = []  # newest first
    for row in rows:
        data = json.loads(row.body).get("data", {})
        if data.get("ghl_contact_id") != ghl_contact:
            continue
        starts.setdefault(row.ghl_id, []).append(data.get("start"))
        if row.action == "create_appointment_request":
            requested.append(str(row.ghl_id))
    free = [g for g in requested if not _idmap.source_ids_for(conn, location_id, "appointment", g)]
    for ghl_id in free:
        if start and any(same("startTime", start, s) for s in starts[ghl_id] if s):
            return ghl_id
    return free[0] if free else None
