"""What the store believes about a location's contacts, for comparison with GHL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.state._syncstate import mapped_with_state
from ghlsync.store._tables_engine import work_items
from ghlsync.store._tables_sync import id_map, sync_state

__all__ = ["Mapped", "StoreView", "load_view"]


@dataclass(slots=True)
class Mapped:
    """One GHL contact the store maps: the DripJobs ids on it and what we last wrote."""

    ghl_id: str
    source_ids: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)
    synced_at: float | None = None


@dataclass(slots=True)
class StoreView:
    """Confirmed mappings by GHL id, and the mappings that never got a GHL id."""

    mapped: dict[str, Mapped]
    orphans: list[dict[str, Any]]
    seen_in_ghl: dict[str, dict[str, Any]] = field(default_factory=dict)  # two-way's record


def load_view(
    engine: sa.Engine,
    location_id: str,
    *,
    stale_after: float,
    now: float,
    ghl_id: str | None = None,
) -> StoreView:
    """Confirmed contact mappings with their last-written body; pending ones older than
    `stale_after` seconds, and sync states without a mapping (store rows with no GHL object).
    With `ghl_id`, only that contact's mappings (a second look at one drift)."""
    mapped: dict[str, Mapped] = {}
    orphans: list[dict[str, Any]] = []
    with engine.connect() as conn:
        rows = conn.execute(
            mapped_with_state(
                id_map.c.source_id,
                id_map.c.ghl_id,
                id_map.c.state,
                id_map.c.pending_since,
                sync_state.c.snapshot,
                sync_state.c.synced_at,
            ).where(
                id_map.c.location_id == location_id,
                id_map.c.entity_type == "contact",
                *([id_map.c.ghl_id == ghl_id] if ghl_id is not None else []),
            )
        )
        for r in rows:
            if r.state != "confirmed" or not r.ghl_id:
                if (r.pending_since or now) < now - stale_after:
                    orphans.append({"dripjobs_id": r.source_id, "why": "create never confirmed"})
                continue
            entry = mapped.setdefault(r.ghl_id, Mapped(r.ghl_id))
            entry.source_ids.append(r.source_id)
            snapshot = json.loads(r.snapshot) if r.snapshot else {}
            entry.body.update(snapshot.get("body", {}))
            entry.synced_at = max(entry.synced_at or 0.0, r.synced_at or 0.0) or None
        stray = conn.execute(
            sa.select(sync_state.c.source_id)
            .select_from(sync_state)
            .outerjoin(
                id_map,
                sa.and_(
                    id_map.c.location_id == sync_state.c.location_id,
                    id_map.c.entity_type == sync_state.c.entity_type,
                    id_map.c.source_id == sync_state.c.source_id,
                ),
            )
            .where(
                sync_state.c.location_id == location_id,
                sync_state.c.entity_type == "contact",
                sync_state.c.side == "ghl",
                sync_state.c.content_hash != "deleted",
                id_map.c.source_id.is_(None),
            )
        )
        orphans += [
            {"dripjobs_id": s, "why": "sync state without a mapping"} for s in stray.scalars()
        ]
        seen = _seen_in_ghl(conn, location_id)
    return StoreView(mapped, orphans, seen)


def _seen_in_ghl(conn: sa.Connection, location_id: str) -> dict[str, dict[str, Any]]:
    """What GHL's webhooks (two-way sync) told us each contact holds."""
    try:
        from ghlsync.store._tables_twoway import ghl_records
    except ImportError:  # pragma: no cover - two-way sync not installed
        return {}
    rows = conn.execute(
        sa.select(ghl_records.c.ghl_id, ghl_records.c.fields).where(
            ghl_records.c.location_id == location_id, ghl_records.c.entity_type == "contact"
        )
    )
    return {r.ghl_id: json.loads(r.fields or "{}") for r in rows}


def in_flight(engine: sa.Engine, location_id: str, source_ids: list[str]) -> bool:
    """Whether live sync has work queued or running for any of these customers."""
    w = work_items.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(w.id).where(
                w.location_id == location_id,
                w.entity_type == "contact",
                w.source_id.in_(source_ids),
                w.status.in_(("pending", "leased")),
            )
        ).first()
    return row is not None


def has_dripjobs_data(engine: sa.Engine, location_id: str, source_id: str) -> bool:
    """Whether the queue still holds the customer's DripJobs data (to create it again)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(work_items.c.id).where(
                work_items.c.location_id == location_id,
                work_items.c.entity_type == "contact",
                work_items.c.source_id == source_id,
            )
        ).first()
    return row is not None
