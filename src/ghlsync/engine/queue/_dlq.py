"""The dead-letter queue: list, show and replay work that could not succeed as it was.

Replaying a dead letter puts its entity's work row back to `pending` with attempts reset and
a new generation (as if a delivery without new data had arrived), and records `replayed_at`.
The worker then syncs the row's *current* merged payload, which includes anything that
arrived after the item died. Replaying is always safe: the flows are idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.queue._codec import loads
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_engine import dead_letters, work_items

__all__ = ["DeadLetter", "get_dead_letter", "list_dead_letters", "replay", "replay_all"]

d = dead_letters.c


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One parked item, with the payload it had when it died."""

    id: int
    work_id: int
    location_id: str
    entity_type: str
    source_id: str
    event: str
    payload: dict[str, Any]
    reason: str
    error_class: str
    attempts: int
    created_at: float
    replayed_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for `--json` output)."""
        return {name: getattr(self, name) for name in self.__slots__}


def _from_row(row: Any) -> DeadLetter:
    return DeadLetter(
        id=int(row.id),
        work_id=int(row.work_id),
        location_id=row.location_id,
        entity_type=row.entity_type,
        source_id=row.source_id,
        event=row.event,
        payload=loads(row.payload),
        reason=row.reason,
        error_class=row.error_class,
        attempts=int(row.attempts),
        created_at=float(row.created_at),
        replayed_at=row.replayed_at,
    )


def list_dead_letters(
    engine: sa.Engine,
    *,
    location: str | None = None,
    include_replayed: bool = False,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters, newest first; replayed ones only when asked."""
    query = sa.select(dead_letters).order_by(d.created_at.desc(), d.id.desc()).limit(limit)
    if location is not None:
        query = query.where(d.location_id == location)
    if not include_replayed:
        query = query.where(d.replayed_at.is_(None))
    with engine.connect() as conn:
        return [_from_row(row) for row in conn.execute(query)]


def get_dead_letter(engine: sa.Engine, letter_id: int) -> DeadLetter | None:
    """One dead letter by id, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(dead_letters).where(d.id == letter_id)).one_or_none()
    return None if row is None else _from_row(row)


def replay(engine: sa.Engine, letter_id: int, *, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Send one dead letter's entity back to the queue; False if unknown or already replayed."""
    with begin_immediate(engine) as conn:
        return _replay(conn, letter_id, clock.now())


def replay_all(
    engine: sa.Engine, *, location: str | None = None, clock: Clock = SYSTEM_CLOCK
) -> int:
    """Replay every dead letter not yet replayed (of one location, if given); how many."""
    query = sa.select(d.id).where(d.replayed_at.is_(None)).order_by(d.id)
    if location is not None:
        query = query.where(d.location_id == location)
    with begin_immediate(engine) as conn:
        ids = list(conn.execute(query).scalars())
        now = clock.now()
        return sum(_replay(conn, letter_id, now) for letter_id in ids)


def _replay(conn: sa.Connection, letter_id: int, now: float) -> bool:
    marked = conn.execute(
        sa.update(dead_letters)
        .where(d.id == letter_id, d.replayed_at.is_(None))
        .values(replayed_at=now)
        .returning(d.work_id)
    ).scalar()
    if marked is None:
        return False
    w = work_items.c
    conn.execute(
        sa.update(work_items)
        .where(w.id == marked)
        .values(
            generation=w.generation + 1,
            # A leased row keeps its lease; the new generation sends it round once more.
            status=sa.case((w.status == "leased", "leased"), else_="pending"),
            attempts=sa.case((w.status == "leased", w.attempts), else_=0),
            available_at=now,
            updated_at=now,
        )
    )
    return True
