"""What `ghlsync status` and `ghlsync dlq` show of two-way sync: the outbox by status, its
dead letters, one write-back in full, and the GHL-side changes kept because DripJobs has no
action that takes them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.outbox._store import replay
from ghlsync.store._tables_twoway import ghl_changes, writeback_outbox

__all__ = [
    "OUTBOX_STATUSES",
    "DeadWriteback",
    "get_writeback",
    "kept_changes",
    "list_dead_writebacks",
    "outbox_counts",
    "replay_dead_writebacks",
]

OUTBOX_STATUSES = ("pending", "sending", "delivered", "skipped", "dead")
o = writeback_outbox.c


@dataclass(frozen=True, slots=True)
class DeadWriteback:
    """A write-back that could not be delivered (or was never sent: `skipped`)."""

    id: str
    location_id: str
    action: str
    ghl_entity: str
    ghl_id: str
    status: str
    attempts: int
    reason: str
    last_status: int | None
    updated_at: float
    replayed_at: float | None
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with `kind: writeback` beside the work queue's dead letters."""
        return {"kind": "writeback", **asdict(self)}


def outbox_counts(engine: sa.Engine) -> dict[str, dict[str, int]]:
    """Per location: write-backs by status (every status present, zeros included)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(o.location_id, o.status, sa.func.count()).group_by(o.location_id, o.status)
        ).all()
    counts: dict[str, dict[str, int]] = {}
    for location, status, n in rows:
        counts.setdefault(location, dict.fromkeys(OUTBOX_STATUSES, 0))[status] = int(n)
    return counts


def kept_changes(engine: sa.Engine, *, recent: int = 5) -> dict[str, Any]:
    """GHL-side changes kept in the store: a count per location and the latest few."""
    c = ghl_changes.c
    with engine.connect() as conn:
        per = conn.execute(sa.select(c.location_id, sa.func.count()).group_by(c.location_id))
        counts = {location: int(n) for location, n in per}
        latest = conn.execute(
            sa.select(ghl_changes).order_by(c.recorded_at.desc(), c.id.desc()).limit(recent)
        ).all()
    return {
        "counts": counts,
        "recent": [
            {
                "location_id": r.location_id,
                "side": r.side,
                "entity": f"{r.entity_type}:{r.ghl_id}",
                "event": r.event,
                "changed": json.loads(r.detail),
                "reason": r.reason,
                "changed_at": r.changed_at,
            }
            for r in latest
        ],
    }


def _dead(row: Any) -> DeadWriteback:
    return DeadWriteback(
        id=row.id,
        location_id=row.location_id,
        action=row.action,
        ghl_entity=row.ghl_entity,
        ghl_id=row.ghl_id,
        status=row.status,
        attempts=int(row.attempts),
        reason=row.last_error or "",
        last_status=row.last_status,
        updated_at=row.updated_at,
        replayed_at=row.replayed_at,
        body=json.loads(row.body),
    )


def list_dead_writebacks(engine: sa.Engine, *, location: str | None = None) -> list[DeadWriteback]:
    """Dead write-backs, newest first."""
    query = sa.select(writeback_outbox).where(o.status == "dead").order_by(o.updated_at.desc())
    if location is not None:
        query = query.where(o.location_id == location)
    with engine.connect() as conn:
        return [_dead(row) for row in conn.execute(query)]


def get_writeback(engine: sa.Engine, writeback_id: str) -> DeadWriteback | None:
    """One write-back, whatever its status."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(writeback_outbox).where(o.id == writeback_id)).first()
    return _dead(row) if row is not None else None


def replay_dead_writebacks(engine: sa.Engine, *, location: str | None, now: float) -> int:
    """Send every dead write-back again (same ids and bodies); how many."""
    return sum(
        replay(engine, item.id, now=now) for item in list_dead_writebacks(engine, location=location)
    )
