"""Store writes of one batch: link matched customers, queue rows, park the rest.

All in the caller's transaction, together with the checkpoint, so a batch is queued whole
or not at all.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync.store._tables_engine import audit_log
from ghlsync.store._tables_sync import id_map

__all__ = ["link", "mapped_ids"]


def mapped_ids(
    conn: sa.Connection, location_id: str, entity_type: str, source_ids: list[str]
) -> set[str]:
    """Which of these DripJobs ids the store already maps to a GHL object (any state)."""
    if not source_ids:
        return set()
    rows = conn.execute(
        sa.select(id_map.c.source_id).where(
            id_map.c.location_id == location_id,
            id_map.c.entity_type == entity_type,
            id_map.c.source_id.in_(source_ids),
        )
    )
    return {r.source_id for r in rows}


def link(
    conn: sa.Connection,
    *,
    location_id: str,
    entity_type: str,
    source_id: str,
    ghl_id: str,
    detail: str,
    now: float,
) -> bool:
    """Map a DripJobs record to the GHL object it already is; False if something mapped it
    meanwhile (a live event): that mapping stands."""
    inserted = conn.execute(
        _insert(conn.dialect.name),
        {
            "location_id": location_id,
            "entity_type": entity_type,
            "source_id": source_id,
            "ghl_id": ghl_id,
            "state": "confirmed",
            "pending_body": None,
            "pending_since": None,
            "updated_at": now,
        },
    ).rowcount
    if not inserted:
        return False
    conn.execute(
        sa.insert(audit_log).values(
            at=now,
            location_id=location_id,
            entity_type=entity_type,
            source_id=source_id,
            action="linked",
            ghl_id=ghl_id,
            calls=0,
            detail=detail,
        )
    )
    return True


@functools.cache
def _insert(dialect: str) -> Any:
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(id_map).on_conflict_do_nothing(
        index_elements=["location_id", "entity_type", "source_id"]
    )
