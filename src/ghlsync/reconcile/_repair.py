"""`--repair`: the safe fixes for drift (see `_sweep`); never a merge or delete in GHL.

Contacts and their children (tasks, notes, appointments) alike: a deleted one whose DripJobs
data the queue still holds is forgotten and its work row queued again, so the worker creates
it anew (a child under its contact's current GHL id); a GHL-side edit is recorded on the GHL
side of the sync state; duplicates are linked in the audit log (action `duplicate`, on each
DripJobs customer mapped to one of them) and left for a person to merge.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_engine import audit_log, work_items
from ghlsync.store._tables_sync import id_map, sync_state

__all__ = ["Repairs"]


class Repairs:
    """Applies the fix for one drift; returns what it did (or why it could not)."""

    def __init__(self, engine: sa.Engine, location_id: str, clock: Clock) -> None:
        self._engine = engine
        self._location = location_id
        self._clock = clock

    def apply(self, drift: Any) -> str:
        """The repair of one drift, in one transaction."""
        entity = getattr(drift, "entity", "contact")
        with begin_immediate(self._engine) as conn:
            if drift.kind == "deleted_in_ghl":
                return self._recreate(conn, drift.dripjobs_ids, entity)
            if drift.kind == "changed_in_ghl":
                return self._record_ghl_side(conn, drift, entity)
            if drift.kind == "store_orphan":
                return self._orphan(conn, drift.dripjobs_ids[0], drift.detail, entity)
            if drift.kind == "ghl_duplicate":
                return self._link_duplicates(conn, drift)
        return "reported only"

    def _recreate(self, conn: sa.Connection, source_ids: list[str], entity: str) -> str:
        queued = [s for s in source_ids if self._requeue(conn, s, entity)]
        for source in queued:
            self._forget(conn, source, entity)
        if not queued:
            return "not repaired: the store holds no DripJobs data for it (send it again)"
        return f"queued to be created again: {', '.join(queued)}"

    def _link_duplicates(self, conn: sa.Connection, drift: Any) -> str:
        """One audit line per DripJobs customer on the duplicates (once per group)."""
        detail = f"GHL duplicates of one person: {', '.join(drift.ghl_ids)} ({drift.detail})"
        if not drift.dripjobs_ids:
            return "reported only: no DripJobs customer is on them; merge them in GHL by hand"
        a = audit_log.c
        for source in drift.dripjobs_ids:
            known = conn.execute(
                sa.select(a.id).where(
                    a.location_id == self._location,
                    a.entity_type == "contact",
                    a.source_id == source,
                    a.action == "duplicate",
                    a.detail == detail,
                )
            ).first()
            if known is None:
                conn.execute(
                    sa.insert(audit_log).values(
                        at=self._clock.now(),
                        location_id=self._location,
                        entity_type="contact",
                        source_id=source,
                        action="duplicate",
                        ghl_id=drift.ghl_ids[0],
                        calls=0,
                        detail=detail,
                    )
                )
        return "linked (audit log) and reported: merge them in GHL by hand (ghlsync never merges)"

    def _record_ghl_side(self, conn: sa.Connection, drift: Any, entity: str) -> str:
        from ghlsync.engine.state import _ghlrecords

        now = self._clock.now()
        fields = {k: v for k, v in (drift.fields or {}).items() if not k.startswith("_")}
        ghl_id = drift.ghl_ids[0]
        record = _ghlrecords.get(conn, self._location, entity, ghl_id)
        for name, change in fields.items():
            record.fields[name] = change["ghl"]
            record.pending[name] = {"value": change["ghl"], "at": now}
        _ghlrecords.put(conn, self._location, entity, ghl_id, record, now=now)
        _ghlrecords.keep_change(
            conn,
            self._location,
            entity,
            ghl_id,
            event="reconcile",
            detail={k: c["ghl"] for k, c in fields.items()},
            reason="changed in GHL without a webhook ghlsync saw (found by reconcile)",
            changed_at=None,
            now=now,
        )
        return "recorded on the GHL side: the field owner rules apply to it"

    def _orphan(self, conn: sa.Connection, source_id: str, why: str, entity: str) -> str:
        if why == "sync state without a mapping":
            conn.execute(
                sa.delete(sync_state).where(
                    sync_state.c.location_id == self._location,
                    sync_state.c.entity_type == entity,
                    sync_state.c.source_id == source_id,
                )
            )
            return "stray sync state dropped"
        if self._requeue(conn, source_id, entity):
            return "queued again: the flow looks the contact up before creating it"
        return "not repaired: the store holds no DripJobs data for it"

    def _requeue(self, conn: sa.Connection, source_id: str, entity: str) -> bool:
        w = work_items.c
        now = self._clock.now()
        done = conn.execute(
            sa.update(work_items)
            .where(
                w.location_id == self._location,
                w.entity_type == entity,
                w.source_id == source_id,
            )
            .values(
                generation=w.generation + 1,
                status=sa.case((w.status == "leased", "leased"), else_="pending"),
                attempts=sa.case((w.status == "leased", w.attempts), else_=0),
                available_at=now,
                updated_at=now,
            )
        )
        return bool(done.rowcount)

    def _forget(self, conn: sa.Connection, source_id: str, entity: str) -> None:
        for table in (id_map, sync_state):
            conn.execute(
                sa.delete(table).where(
                    table.c.location_id == self._location,
                    table.c.entity_type == entity,
                    table.c.source_id == source_id,
                )
            )
