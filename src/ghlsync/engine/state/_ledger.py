"""The flows' view of the store: ID map and sync state, live (SQL) or dry-run (overlay).

Every write commits before the flow goes on, on purpose: a `pending` row must be durable
*before* the create it announces goes out. The writes that commit before the flow goes on do so
before `await` returns, wherever they ran. They are batched with other items' writes of the
same moment, never delayed past it: on PostgreSQL per process (`_pgbatch`), on SQLite the
`pending` rows of one turn of the event loop (`_PendingWrites`).

Two exceptions, when the worker asks for them (`SettleStates`): `record` (a new synced state
of an entity already mapped) and `confirm` (the GHL id of a create and its synced state)
are kept with the work item and written in the transaction that settles it, beside the
work row and its audit lines, instead of in a transaction of their own. Nothing else waits for
them: while the item's lease is held, the two-way flows wait (`to_dripjobs._echo`: a contact
still `pending` with the same email or phone, or a leased row), reconcile leaves a contact
alone (`reconcile._store.in_flight`) and a repair of a child only makes the leased row run
again. The item's own later reads see them (`load` overlays them), and so do the other items of
this process (a confirmed mapping is shown to every ledger of the engine until its settle has
run: `_CONFIRMED`), so a child in another item finds its customer's GHL id at once. If the
process dies before the settle, the item runs again from the older state: an update is sent
again (GHL writes are idempotent here: an update, an add of tags already there), and a create
still `pending` is found in GHL by its email or phone, as after a crash during the create call.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from ghlsync._clock import Clock
from ghlsync.engine.state import _idmap, _pgbatch, _syncstate
from ghlsync.engine.state._idmap import IdMapRow
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.store import _raw as raw

_T = TypeVar("_T")


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


_Key = tuple[str, str, str]  # location, entity type, DripJobs id

# Per engine: the mappings confirmed by items of this process whose settle has not run yet
# (`SettleStates.confirm`), with their synced state, shown to every ledger of the engine.
_CONFIRMED: weakref.WeakKeyDictionary[sa.Engine, dict[_Key, tuple[IdMapRow, SyncState]]] = (
    weakref.WeakKeyDictionary()
)


def _shown(engine: sa.Engine, key: _Key) -> tuple[IdMapRow, SyncState] | None:
    """The mapping (and state) of `key` an item of this process confirmed and has not settled
    yet, if any."""
    shown = _CONFIRMED.get(engine)
    return shown.get(key) if shown else None


class _PendingWrites:
    """The `mark_pending` rows of one turn of an event loop (SQLite), written in one
    transaction: each caller is answered once it has committed. If that transaction fails,
    each row is written again in a transaction of its own, so one bad row fails its caller
    alone."""

    __slots__ = ("_engine", "_rows", "_writer")

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._rows: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Future[None] | None = None

    def add(self, params: dict[str, Any]) -> asyncio.Future[None]:
        done = asyncio.get_running_loop().create_future()
        if not self._rows:
            self._writer = asyncio.ensure_future(self._write_soon())
        self._rows.append((params, done))
        return done

    async def _write_soon(self) -> None:
        await asyncio.sleep(0)  # the callers of this turn of the loop join the first
        rows, self._rows = self._rows, []
        engine = self._engine
        try:
            await _run(engine, _write_pending, engine, [params for params, _ in rows])
        except Exception:
            for params, done in rows:
                try:
                    await _run(engine, _write_pending, engine, [params])
                except Exception as error:
                    _answer(done, error)
                else:
                    _answer(done, None)
            return
        for _, done in rows:
            _answer(done, None)


def _answer(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.cancelled():  # its caller went away; the row is written all the same
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _write_pending(engine: sa.Engine, rows: list[dict[str, Any]], conn: Any = None) -> None:
    """`pending` rows (`_idmap.put_params`), in one transaction."""
    with raw.transaction(engine, immediate=True, conn=conn) as cursor:
        upsert = _idmap.RAW_UPSERT[cursor.dialect.name]
        for params in rows:
            cursor.execute(upsert, params)


# Per engine and event loop: the `mark_pending` rows waiting for their transaction.
_Loops = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PendingWrites]
_PENDING: weakref.WeakKeyDictionary[sa.Engine, _Loops] = weakref.WeakKeyDictionary()


def _pending_writes(engine: sa.Engine) -> _PendingWrites:
    loops = _PENDING.get(engine)
    if loops is None:
        loops = _PENDING[engine] = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    found = loops.get(loop)
    if found is None:
        found = loops[loop] = _PendingWrites(engine)
    return found


async def _run(engine: sa.Engine, work: Callable[..., _T], *args: Any) -> _T:
    """`work(*args, conn)` on the loop's own SQLite connection to `engine` when that is free,
    else (another writer holds the lock; PostgreSQL) `work(*args)` in a thread, on a pooled
    connection."""
    conn = raw.loop_connection(engine)
    if conn is not None:
        try:
            return work(*args, conn)
        except sa.exc.OperationalError as exc:
            if not raw.is_busy(exc):
                raise
    return await asyncio.to_thread(work, *args)


def _confirmed(key: _Key, ghl_id: str, now: float) -> dict[str, Any]:
    """The ID-map row (`_idmap.put_params`) of a confirmed create."""
    return _idmap.put_params(*key, ghl_id=ghl_id, state="confirmed", pending_body=None, now=now)


def shown_mapping(
    engine: sa.Engine, location_id: str, entity_type: str, source_id: str
) -> IdMapRow | None:
    """A mapping an item of this process confirmed and has not settled yet (for readers of
    the ID map outside the ledger, which would still find it `pending` in the store)."""
    found = _shown(engine, (location_id, entity_type, source_id))
    return None if found is None else found[0]


class SettleStates:
    """Sync states `record`ed, and mappings `confirm`ed, while one work item ran, to be
    written when it is settled (`write_in`, in the settle's transaction), and read back
    meanwhile (`SqlLedger.load`). `release` ends the showing of its confirmed mappings to the
    process's other items, once the settle has run (committed or not).

    A state's row (its snapshot as JSON, ~13 µs) is made when first written or asked for
    (`rows`), from the state and the time it was kept: a state replaced before the settle
    (a new customer's unfinished confirmation, then its state after the tag call) costs
    nothing. Kept states are not changed afterwards (flows build new ones)."""

    __slots__ = ("_kept", "_mapped", "_rows", "_showing", "_shown")

    def __init__(self) -> None:
        self._kept: dict[_Key, tuple[SyncState, float]] = {}  # the state, when it was kept
        self._rows: dict[_Key, dict[str, Any]] = {}  # `_syncstate.put_params` of `_kept`'s
        self._mapped: dict[_Key, dict[str, Any]] = {}  # ID-map rows to write (`confirm`)
        self._shown: dict[_Key, tuple[IdMapRow, SyncState]] = {}  # what it put in `_showing`
        self._showing: dict[_Key, tuple[IdMapRow, SyncState]] | None = None  # `_CONFIRMED`'s

    def __len__(self) -> int:
        return len(self._kept) + len(self._mapped)

    def keys(self) -> set[_Key]:
        """The entities whose state or mapping it keeps."""
        return {*self._kept, *self._mapped}

    def keep(self, key: _Key, state: SyncState, now: float) -> None:
        """`state` of `key`, synced at `now`: written with the settle."""
        self._kept[key] = (state, now)
        self._rows.pop(key, None)

    def get(self, key: _Key) -> SyncState | None:
        found = self._kept.get(key)
        return None if found is None else found[0]

    def confirm(
        self,
        engine: sa.Engine,
        key: _Key,
        row: IdMapRow,
        mapped: dict[str, Any],
        state: SyncState,
        now: float,
    ) -> None:
        """A create's GHL id and synced state: written with the settle, shown meanwhile."""
        self._mapped[key] = mapped
        self.keep(key, state, now)
        self._showing = _CONFIRMED.setdefault(engine, {})
        self._showing[key] = self._shown[key] = (row, state)

    def drop(self, key: _Key) -> None:
        """A write of its own (forget) is newer than what was kept."""
        self._kept.pop(key, None)
        self._rows.pop(key, None)
        self._mapped.pop(key, None)
        self._unshow(key)

    def release(self) -> None:
        """The settle has run: the store shows what it wrote (or, if it failed, what it
        holds), so the confirmed mappings kept here are no longer shown."""
        for key in list(self._shown):
            self._unshow(key)

    def _unshow(self, key: _Key) -> None:
        entry = self._shown.pop(key, None)
        if entry is not None and self._showing is not None and self._showing.get(key) is entry:
            del self._showing[key]  # (unless another item's replaced it since)

    def rows(self) -> list[dict[str, Any]]:
        """The kept states as `_syncstate.put_params` rows (for a settle written as one
        statement, `ghlsync.engine.queue._settle_pg`). They stay kept, as with `write_in`."""
        return [self._row(key) for key in self._kept]

    def _row(self, key: _Key) -> dict[str, Any]:
        found = self._rows.get(key)
        if found is None:
            state, now = self._kept[key]
            found = self._rows[key] = _syncstate.put_params(*key, state, now=now)
        return found

    def maps(self) -> list[dict[str, Any]]:
        """The confirmed mappings as `_idmap.put_params` rows (as `rows`)."""
        return list(self._mapped.values())

    def write_in(self, conn: sa.Connection) -> None:
        """Write the kept mappings and states in `conn`'s transaction (the settle's), at the
        driver level. They stay kept: a settle whose shared transaction failed runs again on
        its own."""
        if not self._kept and not self._mapped:
            return
        cursor = raw.RawCursor(conn.connection, conn.dialect)
        if self._mapped:
            mapped = _idmap.RAW_UPSERT[conn.dialect.name]
            for params in self._mapped.values():
                cursor.execute(mapped, params)
        upsert = _syncstate.RAW_UPSERT[conn.dialect.name]
        for key in self._kept:
            cursor.execute(upsert, self._row(key))


@dataclass(slots=True)
class SqlLedger:
    """The real ledger: one short transaction per write, so that the event loop (which the
    receiver shares in `ghlsync serve`) never waits on the store.

    The reads and writes of every synced change (`load`, `lookup`, `mark_pending`, and
    `confirm`, `record` when no settle keeps them) run at the driver level
    (`ghlsync.store._raw`): on SQLite on the event loop's own connection while the write lock
    is free (a write that finds it taken goes to a thread, which waits for it), on PostgreSQL
    batched with every other ledger's of the process on one thread per engine (`_pgbatch`:
    the loads queued together in one statement, the writes in another). The rest goes
    through SQLAlchemy in a thread.
    """

    engine: sa.Engine
    location_id: str
    clock: Clock
    settle: SettleStates | None = None  # given: `record` is written with the item's settle

    def _lookup(self, entity_type: str, source_id: str, conn: Any = None) -> IdMapRow | None:
        """The ID-map row of a DripJobs record."""
        params = _idmap.key_params(self.location_id, entity_type, source_id)
        with raw.read(self.engine, conn=conn) as cursor:
            row = cursor.execute(_idmap.RAW_GET, params).first()
        return None if row is None else _idmap.decode(entity_type, source_id, *row)

    def _state(self, entity_type: str, source_id: str) -> SyncState | None:
        """What was last written to GHL for it."""
        with self.engine.connect() as conn:
            return _syncstate.get(conn, self.location_id, entity_type, source_id)

    def _load(
        self, entity_type: str, source_id: str, conn: Any = None
    ) -> tuple[IdMapRow | None, SyncState | None]:
        """The ID-map row and the sync state, in one statement."""
        params = _syncstate.load_params(self.location_id, entity_type, source_id)
        with raw.read(self.engine, conn=conn) as cursor:
            row = cursor.execute(_syncstate.RAW_LOAD, params).one()
        return _syncstate.decode_load(entity_type, source_id, row)

    def _confirm(
        self, entity_type: str, source_id: str, ghl_id: str, state: SyncState, conn: Any = None
    ) -> None:
        """Record the GHL id and the synced state in one transaction."""
        mapped, synced = self._confirm_params(entity_type, source_id, ghl_id, state)
        with raw.transaction(self.engine, immediate=True, conn=conn) as cursor:
            cursor.execute(_idmap.RAW_UPSERT[cursor.dialect.name], mapped)
            cursor.execute(_syncstate.RAW_UPSERT[cursor.dialect.name], synced)

    def _record(self, entity_type: str, source_id: str, state: SyncState, conn: Any = None) -> None:
        """Record a new synced state of an already mapped entity."""
        params = self._record_params(entity_type, source_id, state)
        with raw.transaction(self.engine, immediate=True, conn=conn) as cursor:
            cursor.execute(_syncstate.RAW_UPSERT[cursor.dialect.name], params)

    def _pending_params(
        self, entity_type: str, source_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return _idmap.put_params(
            self.location_id,
            entity_type,
            source_id,
            ghl_id=None,
            state="pending",
            pending_body=body,
            now=self.clock.now(),
        )

    def _confirm_params(
        self, entity_type: str, source_id: str, ghl_id: str, state: SyncState
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        now = self.clock.now()
        key = (self.location_id, entity_type, source_id)
        return _confirmed(key, ghl_id, now), _syncstate.put_params(*key, state, now=now)

    def _record_params(self, entity_type: str, source_id: str, state: SyncState) -> dict[str, Any]:
        return _syncstate.put_params(
            self.location_id, entity_type, source_id, state, now=self.clock.now()
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
        shown = _shown(self.engine, (self.location_id, entity_type, source_id))
        if shown is not None:
            return shown[0]
        batch = _pgbatch.for_engine(self.engine)
        if batch is not None:  # a load: batched with the others, the state left unread
            return (await batch.load((self.location_id, entity_type, source_id)))[0]
        return await _run(self.engine, self._lookup, entity_type, source_id)

    async def state(self, entity_type: str, source_id: str) -> SyncState | None:
        """What was last written to GHL for it (or recorded by this item, not yet written)."""
        kept = self._kept(entity_type, source_id)
        if kept is not None:
            return kept
        return await asyncio.to_thread(self._state, entity_type, source_id)

    async def load(
        self, entity_type: str, source_id: str
    ) -> tuple[IdMapRow | None, SyncState | None]:
        """The ID-map row and the sync state, in one statement (a state this item recorded
        and has not written yet comes from `settle`; a mapping confirmed by an item of this
        process whose settle has not run yet, from `_CONFIRMED`)."""
        shown = _shown(self.engine, (self.location_id, entity_type, source_id))
        if shown is not None:
            return shown[0], self._kept(entity_type, source_id) or shown[1]
        batch = _pgbatch.for_engine(self.engine)
        if batch is not None:
            row, state = await batch.load((self.location_id, entity_type, source_id))
        else:
            row, state = await _run(self.engine, self._load, entity_type, source_id)
        return row, self._kept(entity_type, source_id) or state

    def _kept(self, entity_type: str, source_id: str) -> SyncState | None:
        """The state this item recorded and has not written yet, if any (`settle`)."""
        if not self.settle:
            return None
        return self.settle.get((self.location_id, entity_type, source_id))

    async def mark_pending(self, entity_type: str, source_id: str, body: dict[str, Any]) -> None:
        """Announce a create (committed before it is sent)."""
        params = self._pending_params(entity_type, source_id, body)
        batch = _pgbatch.for_engine(self.engine)
        if batch is not None:
            await batch.write((params, None))
            return
        # With the other creates announced in this turn of the loop, in one transaction.
        await _pending_writes(self.engine).add(params)

    async def confirm(
        self, entity_type: str, source_id: str, ghl_id: str, state: SyncState
    ) -> None:
        """Record the GHL id and the synced state in one transaction (with `settle`: kept,
        written when the item is settled, and shown to the process meanwhile)."""
        if self.settle is not None:
            key = (self.location_id, entity_type, source_id)
            now = self.clock.now()
            row = IdMapRow(entity_type, source_id, ghl_id, "confirmed", None)
            self.settle.confirm(self.engine, key, row, _confirmed(key, ghl_id, now), state, now)
            return
        batch = _pgbatch.for_engine(self.engine)
        if batch is not None:
            await batch.write(self._confirm_params(entity_type, source_id, ghl_id, state))
            return
        await _run(self.engine, self._confirm, entity_type, source_id, ghl_id, state)

    async def record(self, entity_type: str, source_id: str, state: SyncState) -> None:
        """Record a new synced state of an already mapped entity (with `settle`: kept, and
        written when the item is settled)."""
        if self.settle is not None:
            key = (self.location_id, entity_type, source_id)
            self.settle.keep(key, state, self.clock.now())
            return
        batch = _pgbatch.for_engine(self.engine)
        if batch is not None:
            await batch.write((None, self._record_params(entity_type, source_id, state)))
            return
        await _run(self.engine, self._record, entity_type, source_id, state)

    async def forget(self, entity_type: str, source_id: str) -> None:
        """Drop the mapping and the state together."""
        key = (self.location_id, entity_type, source_id)
        if self.settle is not None:
            self.settle.drop(key)
        try:
            await asyncio.to_thread(self._forget, entity_type, source_id)
        finally:  # an early read of the key is out of date (`_pgbatch.PgBatch.forget_early`)
            batch = _pgbatch.for_engine(self.engine)
            if batch is not None:
                batch.forget_early([key])

    async def owners(self, entity_type: str, ghl_id: str) -> list[str]:
        """The DripJobs ids mapped to one GHL object (with those confirmed by items of this
        process and not settled yet)."""
        found = await asyncio.to_thread(self._owners, entity_type, ghl_id)
        shown = _CONFIRMED.get(self.engine)
        if shown:
            found += [
                key[2]
                for key, (row, _) in list(shown.items())
                if key[:2] == (self.location_id, entity_type)
                and row.ghl_id == ghl_id
                and key[2] not in found
            ]
        return found


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
