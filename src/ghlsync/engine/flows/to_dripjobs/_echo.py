"""Is a GHL event our own write coming back? What did ghlsync write to this GHL record?

GHL webhooks name no actor, so an echo is recognised by content: a field whose value is what
ghlsync last wrote there (the `sync_state` snapshot of every DripJobs record mapped to this
GHL record) is not a GHL-side change. While a write of ours to the record may still be in
flight (its DripJobs-side work row is leased, or a create with the same email or phone is
`pending` in the ID map), the snapshot may not show it yet: the GHL-side work waits
(`WriteInFlightError`, retried shortly) instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.outbox._store import normal_email, normal_phone
from ghlsync.engine.state import _idmap, _syncstate
from ghlsync.ghl._errors import RetriableError
from ghlsync.store._tables_engine import work_items
from ghlsync.store._tables_sync import id_map

__all__ = ["WriteInFlightError", "linked_sources", "write_in_flight", "written"]

# A GHL record type → the DripJobs-side entity type whose flows write it.
DJ_TYPE = {
    "contact": "contact",
    "appointment": "appointment",
    "task": "task",
    "note": "note",
    "opportunity": "opportunity",
}


class WriteInFlightError(RetriableError):
    """A write of ours to this GHL record may be in flight: decide after it is recorded."""


def linked_sources(conn: sa.Connection, location_id: str, entity: str, ghl_id: str) -> list[str]:
    """The DripJobs ids mapped to one GHL record."""
    return _idmap.source_ids_for(conn, location_id, DJ_TYPE[entity], ghl_id)


def written(
    conn: sa.Connection, location_id: str, entity: str, sources: list[str]
) -> dict[str, Any]:
    """What ghlsync last wrote to the GHL record: the merged snapshots (body and tags)."""
    merged: dict[str, Any] = {}
    tags: set[str] = set()
    for source in sources:
        state = _syncstate.get(conn, location_id, DJ_TYPE[entity], source)
        if state is None:
            continue
        merged.update(state.snapshot.get("body") or {})
        tags.update(str(t).lower() for t in state.snapshot.get("tags") or ())
    if tags:
        merged["tags"] = sorted(tags)
    return merged


def write_in_flight(
    conn: sa.Connection,
    location_id: str,
    entity: str,
    sources: list[str],
    record: Mapping[str, Any],
) -> bool:
    """True while a write of ours to this record may not be recorded yet."""
    dj_type = DJ_TYPE[entity]
    if sources:
        leased = conn.execute(
            sa.select(sa.func.count())
            .select_from(work_items)
            .where(
                work_items.c.location_id == location_id,
                work_items.c.entity_type == dj_type,
                work_items.c.source_id.in_(sources),
                work_items.c.status == "leased",
            )
        ).scalar()
        if leased:
            return True
    if entity != "contact":
        return _pending_any(conn, location_id, dj_type)
    return _pending_person(conn, location_id, record)


def _pending_any(conn: sa.Connection, location_id: str, dj_type: str) -> bool:
    """A child create of ours is in flight somewhere in the location (ids unknown yet)."""
    row = conn.execute(
        sa.select(id_map.c.source_id)
        .where(
            id_map.c.location_id == location_id,
            id_map.c.entity_type == dj_type,
            id_map.c.state == "pending",
        )
        .limit(1)
    ).first()
    return row is not None


def _pending_person(conn: sa.Connection, location_id: str, record: Mapping[str, Any]) -> bool:
    """A contact create of ours with this email or phone is pending (not confirmed yet)."""
    email, phone = normal_email(record.get("email")), normal_phone(record.get("phone"))
    if not email and not phone:
        return False
    rows = conn.execute(
        sa.select(id_map.c.pending_body).where(
            id_map.c.location_id == location_id,
            id_map.c.entity_type == "contact",
            id_map.c.state == "pending",
        )
    )
    for row in rows:
        body = json.loads(row.pending_body or "{}")
        if email and normal_email(body.get("email")) == email:
            return True
        if phone and normal_phone(body.get("phone")) == phone:
            return True
    return False
