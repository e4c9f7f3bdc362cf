"""The ledger's hot reads and writes on PostgreSQL, batched per process (two threads per engine).

On SQLite the ledger runs on the event loop's own connection (`ghlsync.store._raw`). On
PostgreSQL each of its reads and writes was an `asyncio.to_thread` hand-off, a pool checkout,
one or two statements, a commit and a pool reset: ~0.45 ms of this process's CPU each, 3–4 of
them per synced change (docs/benchmarks.md, "Issue 13"). Here every ledger of the process queues
them on a `DbThread` per engine (one for the loads, one for the writes), which takes what is
queued in one go: the loads queued one
after the other become one statement (`unnest` of the keys, `WITH ORDINALITY` to give each
caller its own row), and so do the writes (both tables' upserts in one statement, data-modifying
CTEs: atomic, so a confirm's mapping and state commit together).

What the flows rely on is unchanged. The connection is in autocommit (`DbThread`), so each
statement is its own transaction and a caller is answered only after its statement committed:
a `pending` row is durable before the create it announces goes out, a confirm when `confirm()`
returns. The loads run on a thread and connection of their own, so a load never waits behind a
write's commit (its flush: most of a write's time on a busy server, and the item in flight
waits for both). A load sees every write answered before it was queued (answered means
committed); a load and a write in flight together are concurrent, and the load may see the
write or not, as it might had either been queued a moment later (every caller awaits its own
write before going on, and an entity's flows take turns, `flows/_inflight.py`). Each thread
runs its jobs in the order they were queued. A write that fails alone fails its caller alone:
when a batch's statement fails, each of its writes is tried again in a statement of its own.
A lost connection fails the whole batch (`DbThread` invalidates the pool, as SQLAlchemy
would), and the caller's retry is the one it always had. The same key twice in one batch (an
upsert cannot touch a row twice in one statement) goes in successive statements, in queue
order. Rows are written in key order, so two processes writing overlapping batches take their
row locks in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert

from ghlsync.engine.state import _syncstate
from ghlsync.engine.state._idmap import IdMapRow
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.store._dbthread import (
    DbThread,
    Failed,
    one_per_engine,
    raise_failed,
    split_runs,
    write_runs,
)
from ghlsync.store._raw import RawStatement, unnest_rows
from ghlsync.store._tables_sync import (
    ID_MAP_ROW,
    SYNC_STATE_ROW,
    id_map,
    map_key,
    state_key,
    sync_state,
    upsert_id_map,
    upsert_sync_state,
)

Key = tuple[str, str, str]  # location_id, entity_type, source_id
Loaded = tuple[IdMapRow | None, SyncState | None]  # (`load`)
Params = dict[str, Any]  # `_idmap.put_params` / `_syncstate.put_params`
Write = tuple[Params | None, Params | None]  # (id_map row, sync_state row), at least one


def _build_load_many() -> sa.Select[Any]:
    """`_syncstate._LOAD` for many keys: `n` (1-based) says whose row it is.

    Each table is read per key in a `LATERAL` subquery on its whole primary key (`LIMIT 1`
    keeps it from being flattened into a join): the plan can only seek each key, whatever the
    tables held when it was made. As a plain join, the plan PostgreSQL keeps for a prepared
    statement made on an empty store read `sync_state`'s every `ghl` row once and matched the
    keys against that copy (a Materialize under the join), per statement."""
    keys = (
        sa.func.unnest(
            sa.bindparam("ls", type_=ARRAY(sa.String)),
            sa.bindparam("ts", type_=ARRAY(sa.String)),
            sa.bindparam("ss", type_=ARRAY(sa.String)),
        )
        .table_valued("l", "t", "s", with_ordinality="n")
        .render_derived(name="keys")
    )
    mapped = _one_of(id_map, keys, "m", id_map.c.ghl_id, id_map.c.state, id_map.c.pending_body)
    synced = _one_of(
        sync_state,
        keys,
        "st",
        sync_state.c.content_hash,
        sync_state.c.source_updated_at,
        sync_state.c.snapshot,
        side=sync_state.c.side == sa.literal_column("'ghl'"),
    )
    return sa.select(
        keys.c.n,
        mapped.c.ghl_id,
        mapped.c.state,
        mapped.c.pending_body,
        synced.c.content_hash,
        synced.c.source_updated_at,
        synced.c.snapshot,
    ).select_from(keys.outerjoin(mapped, sa.true()).outerjoin(synced, sa.true()))


def _one_of(table: sa.Table, keys: Any, name: str, *columns: Any, side: Any = None) -> Any:
    """`columns` of `table`'s row at the key of `keys`' row, as a `LATERAL` subquery named
    `name` (on the whole primary key with `side`; `LIMIT 1`: not flattened into a join)."""
    c = table.c
    return (
        sa.select(*columns)
        .where(c.location_id == keys.c.l, c.entity_type == keys.c.t, c.source_id == keys.c.s)
        .where(sa.true() if side is None else side)
        .limit(sa.literal_column("1"))
        .lateral(name)
    )


def _build_put_many() -> sa.Select[Any]:
    """`_idmap.RAW_UPSERT` and `_syncstate.RAW_UPSERT` for many rows, in one statement: the
    same conflict handling (the state's COALESCE keeps a recorded source timestamp)."""
    rows = unnest_rows("m", [(col, kind) for col, kind, _ in ID_MAP_ROW])
    names = [col for col, _, _ in ID_MAP_ROW]
    put_map = upsert_id_map(postgresql_insert(id_map).from_select(names, sa.select(*rows.c)))
    rows = unnest_rows("s", [(col, kind) for col, kind, _ in SYNC_STATE_ROW])
    names = [col for col, _, _ in SYNC_STATE_ROW]
    put_state = upsert_sync_state(
        postgresql_insert(sync_state).from_select(names, sa.select(*rows.c))
    )
    # Data-modifying CTEs run to completion whether or not the query reads them.
    return sa.select(sa.literal_column("1")).add_cte(
        put_map.cte("put_map"), put_state.cte("put_state")
    )


LOAD_MANY = RawStatement(_build_load_many())
PUT_MANY = RawStatement(_build_put_many())


class EarlyRead:
    """What one claim read in its own job for its items' first loads (`PgBatch.early_read`),
    and the keys this process wrote while that claim was in flight."""

    __slots__ = ("loaded", "written")

    def __init__(self) -> None:
        self.loaded: dict[Key, Loaded] = {}  # filled on the claim's thread
        self.written: set[Key] = set()  # on the loop: `forget_early` while it was in flight


class PgBatch:
    """The ledger's hot reads and writes for one PostgreSQL engine, on its `DbThread`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._dialect = engine.dialect
        self._thread = DbThread(engine, name="ghlsync-ledger")  # the writes
        self._reads = DbThread(engine, name="ghlsync-ledger-reads")
        self._early: dict[Key, Loaded] = {}  # read with a claim, not loaded yet (`seed`)
        self._watching: list[EarlyRead] = []  # claims in flight (`early_read`)

    async def load(self, key: Key) -> Loaded:
        """The ID-map row and the ghl-side sync state of `key` (`SqlLedger.load`): what its
        claim read, the first time and unless this process wrote the key since; else read now."""
        early = self._early.pop(key, None)
        if early is not None:
            return early
        return await self._reads.run_bulk(self._load_many, key)

    def early_read(self) -> EarlyRead:
        """Before a claim: where its job puts what it reads for its items (`read_early`, on
        the claim's thread, right after the claim in the same job). From now until `seed`,
        the keys this process writes are noted: their rows are not taken."""
        read = EarlyRead()
        self._watching.append(read)
        return read

    def read_early(self, conn: Any, read: EarlyRead, keys: list[Key]) -> None:
        """On the claim's thread and connection: the rows of `keys`, in one statement."""
        if keys:
            read.loaded.update(zip(keys, self._load_many(conn, keys), strict=True))

    def seed(self, read: EarlyRead) -> None:
        """After the claim (done, failed or cancelled): its rows wait for their first `load`,
        but those of keys this process wrote since the claim was queued."""
        self._watching.remove(read)
        self._early.update(
            (key, loaded) for key, loaded in read.loaded.items() if key not in read.written
        )

    def forget_early(self, keys: Iterable[Key]) -> None:
        """Drop the early rows of `keys` (written since, or their item is over), and keep the
        claims in flight from taking theirs."""
        early, watching = self._early, self._watching
        for key in keys:
            early.pop(key, None)
            for read in watching:
                read.written.add(key)

    async def write(self, write: Write) -> None:
        """Commit one caller's rows (one or both tables, atomically); returns once durable."""
        try:
            raise_failed(await self._thread.run_bulk(self._write_many, write))
        finally:  # committed (or maybe): an early read of these keys is out of date
            self.forget_early(map_key(rows) for rows in write if rows is not None)

    def _load_many(
        self, conn: Any, keys: list[Key]
    ) -> list[tuple[IdMapRow | None, SyncState | None]]:
        params = {
            "ls": [k[0] for k in keys],
            "ts": [k[1] for k in keys],
            "ss": [k[2] for k in keys],
        }
        sql, args = LOAD_MANY.args(self._dialect, params)
        rows = {row[0]: row[1:] for row in conn.execute(sql, args, prepare=True).fetchall()}
        return [
            _syncstate.decode_load(entity_type, source_id, rows[n])
            for n, (_, entity_type, source_id) in enumerate(keys, start=1)
        ]

    def _write_many(self, conn: Any, writes: list[Write]) -> list[Failed | None]:
        return write_runs(self._dialect, conn, writes, _runs(writes), self._put, _done, None)

    def _put(self, conn: Any, writes: list[Write]) -> None:
        maps = sorted((m for m, _ in writes if m is not None), key=map_key)
        states = sorted((s for _, s in writes if s is not None), key=state_key)
        params: Params = {}
        for col, _, name in ID_MAP_ROW:
            params[f"m_{col}"] = [m[name] for m in maps]
        for col, _, name in SYNC_STATE_ROW:
            params[f"s_{col}"] = [s[name] for s in states]
        sql, args = PUT_MANY.args(self._dialect, params)
        conn.execute(sql, args, prepare=True)


def _done(_result: None, _write: Write) -> None:
    """A write that its statement committed: nothing more to say."""


def _runs(writes: list[Write]) -> list[list[int]]:
    """The batch's writes in statements (`split_runs`): by the rows they upsert."""
    return split_runs(
        writes,
        lambda w: [
            *([("m", *map_key(w[0]))] if w[0] is not None else []),
            *([("s", *state_key(w[1]))] if w[1] is not None else []),
        ],
    )


_ATTRIBUTE = "_ghlsync_ledger_batch"


def for_engine(engine: sa.Engine) -> PgBatch | None:
    """The engine's batcher on PostgreSQL (one per engine and process); None on SQLite."""
    return one_per_engine(engine, _ATTRIBUTE, PgBatch)
