"""Sync state: per entity and side, the hash of what was last written and a snapshot of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from ghlsync.store._tables_sync import sync_state

Side = Literal["ghl", "dripjobs"]
DELETED = "deleted"  # content_hash of a tombstone: the entity was deleted at source_updated_at


@dataclass(frozen=True, slots=True)
class SyncState:
    """What was last synced for one entity on one side.

    `snapshot` holds what later deltas are computed against: the last-written body
    (`body`) and, for contacts, the known `tags`, `custom_fields` and the per-part source
    timestamps (`stamps`, see `_contact_stamps`). `source_updated_at` is the newest of them.
    """

    content_hash: str
    source_updated_at: float | None
    snapshot: dict[str, Any] = field(default_factory=dict)


def _key(location_id: str, entity_type: str, source_id: str, side: Side) -> sa.ColumnElement[bool]:
    return sa.and_(
        sync_state.c.location_id == location_id,
        sync_state.c.entity_type == entity_type,
        sync_state.c.source_id == source_id,
        sync_state.c.side == side,
    )


def get(
    conn: sa.Connection, location_id: str, entity_type: str, source_id: str, side: Side = "ghl"
) -> SyncState | None:
    """The last-synced state, if this entity was ever synced to `side`."""
    row = conn.execute(
        sa.select(
            sync_state.c.content_hash, sync_state.c.source_updated_at, sync_state.c.snapshot
        ).where(_key(location_id, entity_type, source_id, side))
    ).first()
    if row is None:
        return None
    return SyncState(row.content_hash, row.source_updated_at, json.loads(row.snapshot or "{}"))


def put(
    conn: sa.Connection,
    location_id: str,
    entity_type: str,
    source_id: str,
    state: SyncState,
    *,
    now: float,
    side: Side = "ghl",
) -> None:
    """Insert or replace the last-synced state (in the caller's transaction)."""
    values: dict[str, Any] = {
        "content_hash": state.content_hash,
        "source_updated_at": state.source_updated_at,
        "snapshot": json.dumps(state.snapshot, sort_keys=True, default=str),
        "synced_at": now,
    }
    key = _key(location_id, entity_type, source_id, side)
    # A write without a source timestamp (an event whose rule has none) must not forget the
    # version an earlier write recorded: versions only move forward.
    changes = {k: v for k, v in values.items() if v is not None or k != "source_updated_at"}
    if conn.execute(sa.update(sync_state).where(key).values(**changes)).rowcount == 0:
        conn.execute(
            sa.insert(sync_state).values(
                location_id=location_id,
                entity_type=entity_type,
                source_id=source_id,
                side=side,
                **values,
            )
        )


def delete(conn: sa.Connection, location_id: str, entity_type: str, source_id: str) -> None:
    """Forget every side's state of one entity."""
    conn.execute(
        sa.delete(sync_state).where(
            sync_state.c.location_id == location_id,
            sync_state.c.entity_type == entity_type,
            sync_state.c.source_id == source_id,
        )
    )
