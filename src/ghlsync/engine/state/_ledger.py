"""The flows' view of the store: ID map and sync state, live (SQL) or dry-run (overlay).

Every write commits on its own, on purpose: a `pending` row must be durable *before* the
create it announces goes out, and a confirmation must be durable as soon as GHL answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.state import _idmap, _syncstate
from ghlsync.engine.state._idmap import IdMapRow
from ghlsync.engine.state._syncstate import SyncState


class Ledger(Protocol):
    """Read and record what a flow knows about one location's entities."""

    async def lookup(self, entity_type: str, source_id: str) -> IdMapRow | None:
        """The ID-map row of a DripJobs record."""
        ...

    async def state(self, entity_type: str, source_id: str) -> SyncState | None:
        """What was last written to GHL for it."""
        ...

    async def load(
        self, entity_type: str, source_id: str
    ) -> tuple[IdMapRow | None, SyncState | None]:
        """Both of the above at once."""
        ...

    async def mark_pending(self, entity_type: str, source_id: str, body: dict[str, Any]) -> None:
        """Announce a create (durably) before sending it."""
        ...

    async def confirm(
        self, entity_type: str, source_id: str, ghl_id: str, state: SyncState
    ) -> None:
        """Record the GHL id and the synced state together."""
        ...

    async def record(self, entity_type: str, source_id: str, state: SyncState) -> None:
        """Record a new synced state of an already mapped entity."""
        ...

    async def forget(self, entity_type: str, source_id: str) -> None:
        """The GHL object is gone: drop its mapping and state."""
        ...

    async def owners(self, entity_type: str, ghl_id: str) -> list[str]:
        """The DripJobs ids mapped to one GHL object."""
        ...


@dataclass(slots=True)
class SqlLedger:
    """The real ledger: one short transaction per write, each in a worker thread so that the
    event loop (which the receiver shares in `ghlsync serve`) never waits on the store."""

    engine: sa.Engine
    location_id: str
    clock: Clock

    def _lookup(self, entity_type: str, source_id: str) -> IdMapRow | None:
        """The ID-map row of a DripJobs record."""
        with self.engine.connect() as conn:
            return _idmap.get(conn, self.location_id, entity_type, source_id)

    def _state(self, entity_type: str, source_id: str) -> SyncState | None:
        """What was last written to GHL for it."""
        with self.engine.connect() as conn:
            return _syncstate.get(conn, self.location_id, entity_type, source_id)

    def _load(self, entity_type: str, source_id: str) -> tuple[IdMapRow | None, SyncState | None]:
        """The ID-map row and the sync state, read on one connection."""
        with self.engine.connect() as conn:
            return _syncstate.load(conn, self.location_id, entity_type, source_id)

    def _mark_pending(self, entity_type: str, source_id: str, body: dict[str, Any]) -> None:
        """Announce a create (committed before it is sent)."""
        with self.engine.begin() as conn:
            _idmap.put(
                conn,
                self.location_id,
                entity_type,
                source_id,
                ghl_id=None,
                state="pending",
                pending_body=body,
                now=self.clock.now(),
            )

    def _confirm(self, entity_type: str, source_id: str, ghl_id: str, state: SyncState) -> None:
        """Record the GHL id and the synced state in one transaction."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            _idmap.put(
                conn,
                self.location_id,
                entity_type,
                source_id,
                ghl_id=ghl_id,
                state="confirmed",
                pending_body=None,
                now=now,
            )
            _syncstate.put(conn, self.location_id, entity_type, source_id, state, now=now)

    def _record(self, entity_type: str, source_id: str, state: SyncState) -> None:
        """Record a new synced state of an already mapped entity."""
        with self.engine.begin() as conn:
            _syncstate.put(
                conn, self.location_id, entity_type, source_id, state, now=self.clock.now()
            )

    def _forget(self, entity_type: str, source_id: str) -> None:
        """Drop the mapping and the state together."""
        with self.engine.begin() as conn:
            _idmap.delete(conn, self.location_id, entity_type, source_id)
            _syncstate.delete(conn, self.location_id, entity_type, source_id)

    def _owners(self, entity_type: str, ghl_id: str) -> list[str]:
        """The DripJobs ids mapped to one GHL object."""
        with self.engine.connect() as conn:
            return _idmap.source_ids_for(conn, self.location_id, entity_type, ghl_id)

    async def lookup(self, entity_type: str, source_id: str) -> IdMapRow | None:
        """The ID-map row of a DripJobs record."""
        return await asyncio.to_thread(self._lookup, entity_type, source_id)

    async def state(self, entity_type: str, source_id: str) -> SyncState | None:
        """What was last written to GHL for it."""
        return await asyncio.to_thread(self._state, entity_type, source_id)

    async def load(
        self, entity_type: str, source_id: str
    ) -> tuple[IdMapRow | None, SyncState | None]:
        """The ID-map row and the sync state, read on one connection."""
        return await asyncio.to_thread(self._load, entity_type, source_id)

    async def mark_pending(self, entity_type: str, source_id: str, body: dict[str, Any]) -> None:
        """Announce a create (committed before it is sent)."""
        await asyncio.to_thread(self._mark_pending, entity_type, source_id, body)

    async def confirm(
        self, entity_type: str, source_id: str, ghl_id: str, state: SyncState
    ) -> None:
        """Record the GHL id and the synced state in one transaction."""
        await asyncio.to_thread(self._confirm, entity_type, source_id, ghl_id, state)

    async def record(self, entity_type: str, source_id: str, state: SyncState) -> None:
        """Record a new synced state of an already mapped entity."""
        await asyncio.to_thread(self._record, entity_type, source_id, state)

    async def forget(self, entity_type: str, source_id: str) -> None:
        """Drop the mapping and the state together."""
        await asyncio.to_thread(self._forget, entity_type, source_id)

    async def owners(self, entity_type: str, ghl_id: str) -> list[str]:
        """The DripJobs ids mapped to one GHL object."""
        return await asyncio.to_thread(self._owners, entity_type, ghl_id)


_GONE = object()


@dataclass(slots=True)
class DryLedger:
    """Reads the real store, keeps its own writes in memory (for previews)."""

    base: Ledger
    rows: dict[tuple[str, str], Any] = field(default_factory=dict)
    states: dict[tuple[str, str], Any] = field(default_factory=dict)

    async def lookup(self, entity_type: str, source_id: str) -> IdMapRow | None:
        """The overlay's row if this preview wrote one, else the store's."""
        row = self.rows.get((entity_type, source_id))
        if row is None:
            return await self.base.lookup(entity_type, source_id)
        return None if row is _GONE else row

    async def state(self, entity_type: str, source_id: str) -> SyncState | None:
        """The overlay's state if this preview wrote one, else the store's."""
        state = self.states.get((entity_type, source_id))
        if state is None:
            return await self.base.state(entity_type, source_id)
        return None if state is _GONE else state

    async def load(
        self, entity_type: str, source_id: str
    ) -> tuple[IdMapRow | None, SyncState | None]:
        """The overlay-aware row and state."""
        return await self.lookup(entity_type, source_id), await self.state(entity_type, source_id)

    async def mark_pending(self, entity_type: str, source_id: str, body: dict[str, Any]) -> None:
        """Remember the pending row in memory only."""
        self.rows[(entity_type, source_id)] = IdMapRow(
            entity_type, source_id, None, "pending", body
        )

    async def confirm(
        self, entity_type: str, source_id: str, ghl_id: str, state: SyncState
    ) -> None:
        """Remember the mapping in memory only."""
        self.rows[(entity_type, source_id)] = IdMapRow(
            entity_type, source_id, ghl_id, "confirmed", None
        )
        self.states[(entity_type, source_id)] = state

    async def record(self, entity_type: str, source_id: str, state: SyncState) -> None:
        """Remember the state in memory only."""
        self.states[(entity_type, source_id)] = state

    async def forget(self, entity_type: str, source_id: str) -> None:
        """Hide the mapping for the rest of this preview."""
        self.rows[(entity_type, source_id)] = _GONE
        self.states[(entity_type, source_id)] = _GONE

    async def owners(self, entity_type: str, ghl_id: str) -> list[str]:
        """The store's owners plus this preview's own mappings, minus what it forgot."""
        found = set(await self.base.owners(entity_type, ghl_id))
        for (etype, source_id), row in self.rows.items():
            if etype != entity_type:
                continue
            if row is not _GONE and row.ghl_id == ghl_id:
                found.add(source_id)
            elif source_id in found and (row is _GONE or row.ghl_id != ghl_id):
                found.discard(source_id)
        return sorted(found)
