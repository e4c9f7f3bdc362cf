"""What GHL holds, as ghlsync last saw it: one `ghl_records` row per GHL record.

`fields` are GHL's last known values (GHL field names, tags lower-cased and sorted);
`version` is the newest GHL event time applied, so an older event never overrides a newer
one; `deleted_at` is a tombstone (a delete wins over late updates); `pending` holds GHL-side
field changes DripJobs has not received, `{field: {"value": v, "at": t}}`, which the field
owner rules weigh against later DripJobs changes (`flows.to_dripjobs._owners`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.store._tables_twoway import ghl_changes, ghl_records

__all__ = ["GHLRecord", "get", "keep_change", "put"]


@dataclass(slots=True)
class GHLRecord:
    """One GHL record's known state (a fresh one for a record never seen)."""

    fields: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: float | None = None
    deleted_at: float | None = None
    exists: bool = False


def _key(location_id: str, entity_type: str, ghl_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        ghl_records.c.location_id == location_id,
        ghl_records.c.entity_type == entity_type,
        ghl_records.c.ghl_id == ghl_id,
    )


def get(conn: sa.Connection, location_id: str, entity_type: str, ghl_id: str) -> GHLRecord:
    """The record's state; empty (`exists` False) when never seen."""
    row = conn.execute(
        sa.select(
            ghl_records.c.fields,
            ghl_records.c.pending,
            ghl_records.c.version,
            ghl_records.c.deleted_at,
        ).where(_key(location_id, entity_type, ghl_id))
    ).first()
    if row is None:
        return GHLRecord()
    return GHLRecord(
        json.loads(row.fields or "{}"),
        json.loads(row.pending or "{}"),
        row.version,
        row.deleted_at,
        True,
    )


def put(
    conn: sa.Connection,
    location_id: str,
    entity_type: str,
    ghl_id: str,
    record: GHLRecord,
    *,
    now: float,
) -> None:
    """Insert or replace the record's state (in the caller's transaction)."""
    values = {
        "fields": json.dumps(record.fields, sort_keys=True, default=str),
        "pending": json.dumps(record.pending, sort_keys=True, default=str),
        "version": record.version,
        "deleted_at": record.deleted_at,
        "updated_at": now,
    }
    done = conn.execute(
        sa.update(ghl_records).where(_key(location_id, entity_type, ghl_id)).values(**values)
    )
    if done.rowcount == 0:
        conn.execute(
            sa.insert(ghl_records).values(
                location_id=location_id, entity_type=entity_type, ghl_id=ghl_id, **values
            )
        )
    record.exists = True


def keep_change(
    conn: sa.Connection,
    location_id: str,
    entity_type: str,
    ghl_id: str,
    *,
    event: str,
    detail: dict[str, Any],
    reason: str,
    changed_at: float | None,
    now: float,
) -> None:
    """Record a GHL-side change DripJobs cannot receive (shown by `ghlsync status`)."""
    conn.execute(
        sa.insert(ghl_changes).values(
            location_id=location_id,
            side="ghl",
            entity_type=entity_type,
            ghl_id=ghl_id,
            event=event,
            detail=json.dumps(detail, sort_keys=True, default=str),
            reason=reason,
            changed_at=changed_at,
            recorded_at=now,
        )
    )
