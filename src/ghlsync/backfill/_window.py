"""The rows a backfill has queued and not yet seen settled: a bounded window.

The backfill queues at most `size` rows ahead of the workers. Live webhooks go into the same
queue, oldest first per location, so one waits behind at most this window, never behind the
whole file. `settle()` polls the work rows of the window (one query), and reads what the
worker did with each settled one from the audit log (created, updated, skipped, dead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync.backfill._park import label_dead
from ghlsync.store._tables_engine import audit_log, work_items

__all__ = ["Queued", "Settled", "Window"]

w = work_items.c
a = audit_log.c


@dataclass(frozen=True, slots=True)
class Queued:
    """One queued row: its entity, its spreadsheet row, when it was queued, linked or not."""

    entity_type: str
    source_id: str
    number: int
    queued_at: float
    linked: bool = False


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of a queued row: `created`, `updated`, `unchanged`, `linked` or `dead`."""

    row: Queued
    outcome: str


class Window:
    """The rows in flight of one backfill (in one location)."""

    def __init__(self, engine: sa.Engine, location_id: str, file_name: str) -> None:
        self._engine = engine
        self._location = location_id
        self._file = file_name
        self._rows: dict[tuple[str, str], Queued] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, rows: Iterable[Queued]) -> int:
        """Track newly queued rows; how many replaced an earlier row of the same entity (one
        work row syncs both, so the earlier one is settled with it)."""
        replaced = 0
        for row in rows:
            key = (row.entity_type, row.source_id)
            earlier = self._rows.get(key)
            if earlier is not None:  # its outcome counts too: since the earlier row, linked
                replaced += 1
                row = Queued(
                    row.entity_type,
                    row.source_id,
                    row.number,
                    earlier.queued_at,
                    earlier.linked or row.linked,
                )
            self._rows[key] = row
        return replaced

    def settle(self) -> list[Settled]:
        """Rows whose work row is done or dead now; they leave the window."""
        if not self._rows:
            return []
        ids = sorted({source for _, source in self._rows})
        with self._engine.begin() as conn:
            status = conn.execute(
                sa.select(w.id, w.entity_type, w.source_id, w.status).where(
                    w.location_id == self._location, w.source_id.in_(ids)
                )
            ).all()
            done = [r for r in status if (r.entity_type, r.source_id) in self._rows]
            done = [r for r in done if r.status in ("done", "dead")]
            if not done:
                return []
            outcomes = self._outcomes(conn, done)
        settled = [Settled(self._rows.pop(key), outcome) for key, outcome in outcomes.items()]
        return settled

    def _outcomes(self, conn: sa.Connection, done: list[Any]) -> dict[tuple[str, str], str]:
        since = min(self._rows[(r.entity_type, r.source_id)].queued_at for r in done)
        lines = conn.execute(
            sa.select(a.entity_type, a.source_id, a.action, a.at, a.ghl_id)
            .where(
                a.location_id == self._location,
                a.source_id.in_([r.source_id for r in done]),
                a.at >= since,
            )
            .order_by(a.id)
        ).all()
        actions: dict[tuple[str, str], set[str]] = {}
        created: dict[tuple[str, str], str] = {}
        for line in lines:
            key = (line.entity_type, line.source_id)
            queued = self._rows.get(key)
            if queued is not None and line.at >= queued.queued_at:
                actions.setdefault(key, set()).add(line.action)
                if line.action == "created" and line.ghl_id:
                    created[key] = line.ghl_id
        for key in self._merged(conn, created):
            actions[key] = (actions[key] - {"created"}) | {"merged"}
        outcomes: dict[tuple[str, str], str] = {}
        for row in done:
            key = (row.entity_type, row.source_id)
            queued = self._rows[key]
            if row.status == "dead":
                label = f"backfill {self._file} row {queued.number}: "
                label_dead(conn, int(row.id), label, queued.queued_at)
                outcomes[key] = "dead"
            else:
                outcomes[key] = _outcome(actions.get(key, set()), queued.linked)
        return outcomes

    def _merged(
        self, conn: sa.Connection, created: dict[tuple[str, str], str]
    ) -> list[tuple[str, str]]:
        """Rows the flow reports `created` whose GHL contact another customer created first:
        GHL's duplicate rule linked them to it (two customers, one person)."""
        if not created:
            return []
        first: dict[str, str] = {}
        rows = conn.execute(
            sa.select(a.ghl_id, a.source_id)
            .where(
                a.location_id == self._location,
                a.ghl_id.in_(set(created.values())),
                a.action == "created",
            )
            .order_by(a.id)
        )
        for row in rows:
            first.setdefault(row.ghl_id, row.source_id)
        return [key for key, ghl_id in created.items() if first.get(ghl_id) != key[1]]


def _outcome(actions: set[str], linked: bool) -> str:
    """One word for what the worker did with the row (and earlier rows merged into it)."""
    if "created" in actions:
        return "created"
    if linked or "merged" in actions:
        return "linked"
    if actions & {"updated", "completed", "reopened", "cancelled", "deleted"}:
        return "updated"
    return "unchanged"  # skipped: already in sync (zero calls)
