"""Parked rows: rejected and ambiguous rows go to the dead-letter queue with their row number.

They are never queued (nothing could succeed as they are), so their dead letter has no work
row (`work_id` 0) and `dlq replay` has nothing to resend: fix the row (or, for an ambiguous
match, the duplicate in GHL) and run the same backfill again — rows already imported are
skipped, parked ones are tried again. A re-run does not park the same row twice.
Dead letters of rows GHL refused later (e.g. 422) belong to their work rows; `label_dead`
puts the row number in front of their reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.queue._codec import dumps
from ghlsync.store._tables_engine import dead_letters

__all__ = ["label_dead", "park", "row_label"]

d = dead_letters.c


def row_label(file_name: str, number: int) -> str:
    """`backfill customers.csv row 17: ` — the prefix of every reason about a row."""
    return f"backfill {file_name} row {number}: "


def park(
    conn: sa.Connection,
    *,
    location_id: str,
    entity_type: str,
    source_id: str | None,
    event: str,
    payload: Mapping[str, Any],
    reason: str,
    error_class: str,
    now: float,
) -> bool:
    """One dead letter for a row never queued; False when an open one says the same."""
    key = source_id or "-"
    existing = conn.execute(
        sa.select(d.id).where(
            d.location_id == location_id,
            d.entity_type == entity_type,
            d.source_id == key,
            d.reason == reason,
            d.replayed_at.is_(None),
        )
    ).first()
    if existing is not None:
        return False
    conn.execute(
        sa.insert(dead_letters).values(
            work_id=0,
            location_id=location_id,
            entity_type=entity_type,
            source_id=key[:128],
            event=event,
            payload=dumps(dict(payload)),
            reason=reason,
            error_class=error_class[:128],
            attempts=0,
            created_at=now,
        )
    )
    return True


def label_dead(conn: sa.Connection, work_id: int, label: str, since: float) -> None:
    """Prefix the reason of the work row's recent dead letters with the row's label."""
    rows = conn.execute(
        sa.select(d.id, d.reason).where(d.work_id == work_id, d.created_at >= since)
    ).all()
    for row in rows:
        if not str(row.reason).startswith("backfill "):
            conn.execute(
                sa.update(dead_letters).where(d.id == row.id).values(reason=label + row.reason)
            )
