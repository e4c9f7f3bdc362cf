"""Where each location's periodic sweep stands, in the store (`reconcile_sweeps`).

A sweep records its GHL search cursor after every page it has finished comparing, so a
`serve` restarted mid-walk asks GHL for the next page, not the first one again. The findings
kept are the counts by drift kind of the last sweep that ended (the drift itself is in the
logs, and `ghlsync reconcile` shows it in full).

Several `serve` processes may share a store: a sweep is `claim`ed first (its `owner`), and
another process takes over a sweep under way only once its heartbeat (`updated_at`, moved at
every page) is older than the lease; a process that stops cleanly `release`s its sweep, so a
restarted one walks on at once.

With each page's cursor go the mapped contacts that page held (`reconcile_seen`), so a
resumed sweep still knows which mapped contacts it walked before the cut (`seen_ids`), and
tells deleted ones apart; the rows go when a sweep starts afresh and when it ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync.store import begin_immediate
from ghlsync.store._tables_reconcile import reconcile_seen, reconcile_sweeps

__all__ = [
    "SweepState",
    "checkpoint",
    "claim",
    "finish",
    "load",
    "load_all",
    "release",
    "seen_ids",
]


@dataclass(frozen=True, slots=True)
class SweepState:
    """One location's row: the sweep under way (cursor) or the last one (findings)."""

    location_id: str
    cursor: Any  # searchAfter of the last finished page; None: from the start
    contacts_seen: int
    started_at: float
    finished_at: float | None  # None: a sweep is under way (or was cut off by a restart)
    findings: dict[str, int]
    complete: bool

    @property
    def under_way(self) -> bool:
        """A sweep started and has not ended: the next run resumes it."""
        return self.finished_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (`ghlsync status --json`)."""
        return {
            "location_id": self.location_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "under_way": self.under_way,
            "contacts_seen": self.contacts_seen,
            "complete": self.complete,
            "findings": self.findings,
        }


def _state(row: Any) -> SweepState:
    return SweepState(
        location_id=row.location_id,
        cursor=json.loads(row.cursor) if row.cursor else None,
        contacts_seen=int(row.contacts_seen),
        started_at=float(row.started_at),
        finished_at=row.finished_at,
        findings=json.loads(row.findings or "{}"),
        complete=bool(row.complete),
    )


def load(engine: sa.Engine, location_id: str) -> SweepState | None:
    """The location's row, or None before its first sweep."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(reconcile_sweeps).where(reconcile_sweeps.c.location_id == location_id)
        ).one_or_none()
    return None if row is None else _state(row)


def load_all(engine: sa.Engine) -> list[SweepState]:
    """Every location's row, by location id."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(reconcile_sweeps).order_by(reconcile_sweeps.c.location_id)
        ).all()
    return [_state(row) for row in rows]


def claim(
    engine: sa.Engine, location_id: str, owner: str, *, now: float, every: float, lease: float
) -> SweepState | None:
    """Take the location's sweep for `owner`: the one under way (resumed from its cursor) when
    nobody else holds it, else a new one when `every` has passed since the last ended. None:
    not due, or another process is sweeping it."""
    table = reconcile_sweeps
    fresh = {"cursor": None, "contacts_seen": 0, "started_at": now, "finished_at": None}
    where = table.c.location_id == location_id
    with begin_immediate(engine) as conn:
        row = conn.execute(sa.select(table).where(where).with_for_update()).one_or_none()
        if row is None:
            conn.execute(
                sa.insert(table).values(
                    location_id=location_id, **fresh, owner=owner, updated_at=now
                )
            )
        elif row.finished_at is None:
            if row.owner not in (None, owner) and row.updated_at > now - lease:
                return None  # another process is sweeping it
            conn.execute(sa.update(table).where(where).values(owner=owner, updated_at=now))
        elif row.finished_at + every > now:
            return None  # another process ended one since we looked
        else:
            conn.execute(sa.update(table).where(where).values(**fresh, owner=owner, updated_at=now))
        if row is None or row.finished_at is not None:  # a fresh walk: nothing seen yet
            _clear_seen(conn, location_id)
        claimed = conn.execute(sa.select(table).where(where)).one()
    return _state(claimed)


def release(engine: sa.Engine, location_id: str, owner: str) -> None:
    """`owner` stops (shutdown): its sweep under way may be resumed by anyone at once."""
    table = reconcile_sweeps
    with begin_immediate(engine) as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.location_id == location_id, table.c.owner == owner)
            .values(owner=None)
        )


def seen_ids(engine: sa.Engine, location_id: str) -> set[str]:
    """The mapped contacts the sweep under way walked before its last checkpoint."""
    s = reconcile_seen.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.ghl_id).where(s.location_id == location_id))
        return set(rows.scalars())


def _clear_seen(conn: sa.Connection, location_id: str) -> None:
    conn.execute(sa.delete(reconcile_seen).where(reconcile_seen.c.location_id == location_id))


def checkpoint(
    engine: sa.Engine,
    location_id: str,
    cursor: Any,
    contacts_seen: int,
    now: float,
    mapped_ids: list[str] | None = None,
) -> None:
    """The walk finished the page ending at `cursor`, `contacts_seen` contacts in all, and
    saw `mapped_ids` (mapped contacts) on it."""
    table = reconcile_sweeps
    with begin_immediate(engine) as conn:
        _add_seen(conn, location_id, sorted(set(mapped_ids or ())))
        conn.execute(
            sa.update(table)
            .where(table.c.location_id == location_id)
            .values(cursor=json.dumps(cursor), contacts_seen=contacts_seen, updated_at=now)
        )


def finish(
    engine: sa.Engine,
    location_id: str,
    *,
    findings: dict[str, int],
    contacts_seen: int,
    complete: bool,
    now: float,
) -> None:
    """The sweep ended: keep its findings; the next one starts from the beginning."""
    table = reconcile_sweeps
    with begin_immediate(engine) as conn:
        _clear_seen(conn, location_id)
        conn.execute(
            sa.update(table)
            .where(table.c.location_id == location_id)
            .values(
                cursor=None,
                contacts_seen=contacts_seen,
                finished_at=now,
                findings=json.dumps(findings, sort_keys=True),
                complete=complete,
                owner=None,
                updated_at=now,
            )
        )


def _add_seen(conn: sa.Connection, location_id: str, ghl_ids: list[str]) -> None:
    """Record the page's mapped contacts; a page asked for again adds nothing twice."""
    if not ghl_ids:
        return
    s = reconcile_seen.c
    known = set(
        conn.execute(
            sa.select(s.ghl_id).where(s.location_id == location_id, s.ghl_id.in_(ghl_ids))
        ).scalars()
    )
    fresh = [{"location_id": location_id, "ghl_id": g} for g in ghl_ids if g not in known]
    if fresh:
        conn.execute(sa.insert(reconcile_seen), fresh)
