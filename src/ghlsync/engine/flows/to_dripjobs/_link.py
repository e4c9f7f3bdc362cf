"""A DripJobs event caused by our own write-back links; it writes nothing to GHL.

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
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.flows.to_ghl._contact_stamps import advanced, latest
from ghlsync.engine.outbox._store import find_lead
from ghlsync.engine.state import _ghlrecords, _idmap, _syncstate
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.mapping import Mapper, content_hash
from ghlsync.store._engine import begin_immediate

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
        if _idmap.get(conn, location_id, "contact", source_id) is not None:
            return None
        ghl_contact = payload.get("ghl_contact_id")
        ghl_id = find_lead(
            conn,
            location_id,
            ghl_contact_id=str(ghl_contact) if ghl_contact else None,
            email=payload.get("email"),
            phone=payload.get("phone"),
            since=now - ECHO_WINDOW,
        )
        if ghl_id is None:
            return None
        entity = next(e for e in mapper.map(event, payload).entities if e.type == "contact")
        record = _ghlrecords.get(conn, location_id, "contact", ghl_id)
        stamps = advanced(entity, None)
        snapshot = {
            "body": entity.request_body("update"),
            "custom_fields": dict(entity.custom_fields),
            "tags": sorted({str(t).lower() for t in record.fields.get("tags") or ()}),
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
