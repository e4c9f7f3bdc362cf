"""PostgreSQL: the worker's completions, many in one statement on one thread per engine.

A completed item writes its work row (`complete_in`), its audit lines, the sync states its
flows recorded and the mappings of the creates they confirmed
(`ghlsync.engine.state._ledger.SettleStates`). In a shared transaction on PostgreSQL that is
a BEGIN, one statement per row and a COMMIT, each a round trip from a thread of the executor:
~4–5 round trips for one item, at 55–70 µs of this process's CPU each on a 2-core machine,
plus SQLAlchemy's work around every statement (docs/benchmarks.md, "Issue 13"). Here every
completion queued while the thread was busy goes into one statement: the work rows updated
from `unnest` arrays with the same guard and the same values as `complete_in` (leased, same
lease token), and data-modifying CTEs that insert the audit lines and upsert the sync states
and mappings of exactly the items that update matched, in the order given. One statement is
one transaction (the `DbThread` runs in autocommit): an item's row, audit, states and
mappings commit together or not at all, and its caller is answered once they have.

What `complete_in` guarantees holds: an item whose lease was lost (another worker took it
over) writes nothing and answers False (its creates' mappings stay `pending`, as after a
crash: whoever runs it next finds those GHL records again rather than creating more); one
whose row got a newer delivery meanwhile goes back to `pending`. The same sync-state or
mapping key in two completions of a batch (an upsert cannot touch a row twice in one
statement) starts a new statement, in queue order. When a batch's statement fails, each of
its completions is tried again in a statement of its own, so one bad item fails alone; a lost
connection fails the whole batch (`DbThread` invalidates the pool) and each caller raises, as
a failed settle transaction did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert

from ghlsync.engine.queue._queue import _RELEASED, AuditEntry, Claim, _audit_rows
from ghlsync.store._dbthread import (
    DbThread,
    Failed,
    one_per_engine,
    raise_failed,
    split_runs,
    write_runs,
)
from ghlsync.store._raw import RawStatement, unnest_rows
from ghlsync.store._tables_engine import audit_log, work_items
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

StateRow = dict[str, Any]  # `_syncstate.put_params`: k_location, k_type, ..., v_synced_at
MapRow = dict[str, Any]  # `_idmap.put_params`: k_location, k_type, k_source, v_ghl_id, ...
# The settle thread's PostgreSQL session (`DbThread` settings, its connection only):
# `COMPLETE_MANY` is planned once per connection, not at every run. Left to choose, PostgreSQL
# planned it anew each time (~0.5 ms of its CPU, more than running it): the generic plan,
# costed for arrays of 10 elements, looked dearer than any custom one. Every row it touches
# is found by a key it is given (the work rows by id, the sync states by their primary key):
# index seeks in nested loops, whatever the table's statistics say (a new store has none).
PG_SETTINGS = {
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
}

_AUDIT_COLUMNS = (
    ("at", sa.Float),
    ("location_id", sa.String),
    ("entity_type", sa.String),
    ("source_id", sa.String),
    ("action", sa.String),
    ("ghl_id", sa.String),
    ("calls", sa.Integer),
    ("detail", sa.Text),
)


@dataclass(frozen=True, slots=True)
class Completion:
    """One item's completion as data: what `complete_in` and the states' `write_in` write
    (the sync states its flows recorded, the mappings of the creates they confirmed)."""

    item: Claim
    audit: Sequence[AuditEntry]
    now: float
    states: Sequence[StateRow]
    maps: Sequence[MapRow] = ()


def _build_complete_many() -> sa.Select[Any]:
    w = work_items.c
    items = unnest_rows(
        "c",
        [("id", sa.BigInteger), ("token", sa.String), ("gen", sa.Integer), ("now", sa.Float)],
    )
    # The rows locked first, in entity order: the order the receiver's batches lock the rows
    # they merge into (`_batch.accept_many`), so the two cannot deadlock on each other.
    locked = (
        sa.select(w.id)
        .where(w.id == items.c.id)
        .order_by(w.location_id, w.entity_type, w.source_id)
        .with_for_update(of=work_items)
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    done = (
        sa.update(work_items)
        .where(
            w.id == items.c.id,
            w.id.in_(sa.select(locked.c.id)),
            w.status == "leased",
            w.lease_token == items.c.token,
        )
        .values(
            # As `complete_in`: done only if no delivery came meanwhile.
            status=sa.case((w.generation == items.c.gen, "done"), else_="pending"),
            done_generation=items.c.gen,
            attempts=0,
            last_error=None,
            available_at=items.c.now,
            updated_at=items.c.now,
            **_RELEASED,
        )
        .returning(w.id)
        .cte("done")
    )
    settled = sa.select(done.c.id).scalar_subquery()

    lines = unnest_rows("a", [("item", sa.BigInteger), ("n", sa.Integer), *_AUDIT_COLUMNS])
    names = [col for col, _ in _AUDIT_COLUMNS]
    audit = postgresql_insert(audit_log).from_select(
        names,
        sa.select(*(lines.c[name] for name in names))
        .where(lines.c.item.in_(settled))
        .order_by(lines.c.n),
    )

    states = _upsert_settled("s", sync_state, SYNC_STATE_ROW, upsert_sync_state, settled)
    maps = _upsert_settled("m", id_map, ID_MAP_ROW, upsert_id_map, settled)
    # Data-modifying CTEs run to completion whether or not the query reads them.
    return sa.select(done.c.id).add_cte(audit.cte("audit"), states.cte("states"), maps.cte("maps"))


def _upsert_settled(
    prefix: str,
    table: sa.Table,
    columns: Sequence[tuple[str, Any, str]],
    upsert: Callable[[Any], Any],
    settled: Any,
) -> Any:
    """`table`'s rows given as `unnest` arrays (`prefix`_item, `prefix`_<column>...), upserted
    for the items in `settled` only."""
    rows = unnest_rows(prefix, [("item", sa.BigInteger), *((c, k) for c, k, _ in columns)])
    names = [col for col, _, _ in columns]
    chosen = sa.select(*(rows.c[name] for name in names)).where(rows.c.item.in_(settled))
    return upsert(postgresql_insert(table).from_select(names, chosen))


COMPLETE_MANY = RawStatement(_build_complete_many())


class PgSettle:
    """The worker's completions for one PostgreSQL engine, on their `DbThread`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._dialect = engine.dialect
        self._thread = DbThread(engine, name="ghlsync-settle", settings=PG_SETTINGS)

    async def complete(self, completion: Completion) -> bool:
        """Write one completion with whatever else is queued; False: the lease was lost."""
        return raise_failed(await self._thread.run_bulk(self._complete_many, completion))

    def _complete_many(self, conn: Any, batch: list[Completion]) -> list[bool | Failed]:
        return write_runs(
            self._dialect, conn, batch, _runs(batch), self._write, _settled, unanswered=False
        )

    def _write(self, conn: Any, batch: list[Completion]) -> set[int]:
        """One statement for `batch`; the ids of the items it completed."""
        params: dict[str, Any] = {
            "c_id": [c.item.id for c in batch],
            "c_token": [c.item.lease_token for c in batch],
            "c_gen": [c.item.generation for c in batch],
            "c_now": [c.now for c in batch],
        }
        lines = [(c.item.id, line) for c in batch for line in _audit_rows(c.item, c.audit, c.now)]
        params["a_item"] = [item for item, _ in lines]
        params["a_n"] = list(range(len(lines)))
        for col, _ in _AUDIT_COLUMNS:
            params[f"a_{col}"] = [line[col] for _, line in lines]
        states = sorted(
            ((c.item.id, row) for c in batch for row in c.states), key=lambda s: state_key(s[1])
        )
        params["s_item"] = [item for item, _ in states]
        for col, _, name in SYNC_STATE_ROW:
            params[f"s_{col}"] = [row[name] for _, row in states]
        maps = sorted(
            ((c.item.id, row) for c in batch for row in c.maps), key=lambda m: map_key(m[1])
        )
        params["m_item"] = [item for item, _ in maps]
        for col, _, name in ID_MAP_ROW:
            params[f"m_{col}"] = [row[name] for _, row in maps]
        sql, args = COMPLETE_MANY.args(self._dialect, params)
        return {row[0] for row in conn.execute(sql, args, prepare=True).fetchall()}


def _settled(settled: set[int], completion: Completion) -> bool:
    """Whether the statement completed this item (False: its lease was lost)."""
    return completion.item.id in settled


def _runs(batch: list[Completion]) -> list[list[int]]:
    """The batch in statements (`split_runs`): by the sync states and mappings it writes."""
    return split_runs(
        batch,
        lambda c: [*map(state_key, c.states), *(("map", *map_key(row)) for row in c.maps)],
    )


_ATTRIBUTE = "_ghlsync_settle_batch"


def for_engine(engine: sa.Engine) -> PgSettle | None:
    """The engine's completion batcher on PostgreSQL (one per engine and process); None on
    SQLite, whose settles run on the event loop's own connection (`Settler`)."""
    return one_per_engine(engine, _ATTRIBUTE, PgSettle)
