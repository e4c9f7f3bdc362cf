"""Sync state: per entity and side, the hash of what was last written and a snapshot of it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ghlsync.engine.state import _idmap
from ghlsync.engine.state._idmap import IdMapRow
from ghlsync.store._raw import RawStatement
from ghlsync.store._tables_sync import id_map, sync_state, upsert_sync_state

Side = Literal["ghl", "dripjobs"]
DELETED = "deleted"  # content_hash of a tombstone: the entity was deleted at source_updated_at


def mapped_with_state(*columns: Any, side: Side = "ghl") -> sa.Select[Any]:
    """SELECT `columns` over the ID map, each row with its sync state on `side` (or NULLs)."""
    on = sa.and_(
        sync_state.c.location_id == id_map.c.location_id,
        sync_state.c.entity_type == id_map.c.entity_type,
        sync_state.c.source_id == id_map.c.source_id,
        sync_state.c.side == side,
    )
    return sa.select(*columns).select_from(id_map.outerjoin(sync_state, on))


@dataclass(frozen=True, slots=True)
class SyncState:
    """What was last synced for one entity on one side.

    `snapshot` holds what later deltas are computed against: the last-written body
    (`body`) and, for contacts, the known `tags`, `custom_fields` and the per-part source
    timestamps (`stamps`, see `_contact_stamps`). `source_updated_at` is the newest of them.
    """

    content_hash: str
    source_updated_at: float | None
    snapshot: dict[str, Any] = field(default_factory=dict)


# Built once with bind parameters: building a statement per call cost more than running it
# (bench/bench_engine.py; "Engine throughput" in docs/benchmarks.md).
_KEY = sa.and_(
    sync_state.c.location_id == sa.bindparam("k_location"),
    sync_state.c.entity_type == sa.bindparam("k_type"),
    sync_state.c.source_id == sa.bindparam("k_source"),
    sync_state.c.side == sa.bindparam("k_side"),
)
_GET = sa.select(
    sync_state.c.content_hash, sync_state.c.source_updated_at, sync_state.c.snapshot
).where(_KEY)
# A write without a source timestamp (a partial contact from a child event) must not forget
# the version an earlier write recorded: COALESCE keeps it.
_UPDATE = (
    sa.update(sync_state)
    .where(_KEY)
    .values(
        content_hash=sa.bindparam("v_hash"),
        source_updated_at=sa.func.coalesce(
            sa.bindparam("v_updated_at", type_=sa.Float), sync_state.c.source_updated_at
        ),
        snapshot=sa.bindparam("v_snapshot"),
        synced_at=sa.bindparam("v_synced_at"),
    )
)
_ROW = dict(
    location_id=sa.bindparam("k_location"),
    entity_type=sa.bindparam("k_type"),
    source_id=sa.bindparam("k_source"),
    side=sa.bindparam("k_side"),
    content_hash=sa.bindparam("v_hash"),
    source_updated_at=sa.bindparam("v_updated_at", type_=sa.Float),
    snapshot=sa.bindparam("v_snapshot"),
    synced_at=sa.bindparam("v_synced_at"),
)
"""One sync_state row from the statements' bound parameters (plain INSERT and the upsert)."""
_INSERT = sa.insert(sync_state).values(**_ROW)


def _upsert(insert: Any) -> Any:
    """`INSERT … ON CONFLICT (key) DO UPDATE`, the same COALESCE as `_UPDATE`: one statement
    where UPDATE-then-INSERT took two for every new entity."""
    return upsert_sync_state(insert(sync_state).values(**_ROW))


_UPSERT = {"sqlite": _upsert(sqlite_insert), "postgresql": _upsert(postgresql_insert)}

# The ID-map row and the ghl-side sync state of one entity in one statement (the flows read
# both before every sync): a one-row anchor LEFT JOINed to each, NULLs where a row is missing.
_ANCHOR = sa.select(sa.literal(1).label("one")).subquery("anchor")
_LOAD = sa.select(
    id_map.c.ghl_id,
    id_map.c.state,
    id_map.c.pending_body,
    sync_state.c.content_hash,
    sync_state.c.source_updated_at,
    sync_state.c.snapshot,
).select_from(
    _ANCHOR.outerjoin(
        id_map,
        sa.and_(
            id_map.c.location_id == sa.bindparam("k_location"),
            id_map.c.entity_type == sa.bindparam("k_type"),
            id_map.c.source_id == sa.bindparam("k_source"),
        ),
    ).outerjoin(sync_state, _KEY)
)


# The same statements for the ledger's driver-level path (`ghlsync.store._raw`).
RAW_LOAD = RawStatement(_LOAD)
RAW_UPSERT = {name: RawStatement(stmt) for name, stmt in _UPSERT.items()}


def load(
    conn: sa.Connection, location_id: str, entity_type: str, source_id: str
) -> tuple[IdMapRow | None, SyncState | None]:
    """`_idmap.get` and `get` (ghl side) together, in one statement."""
    row = conn.execute(_LOAD, load_params(location_id, entity_type, source_id)).one()
    return decode_load(entity_type, source_id, tuple(row))


def load_params(location_id: str, entity_type: str, source_id: str) -> dict[str, Any]:
    """The bound parameters of `load` (and of `RAW_LOAD`)."""
    return _params(location_id, entity_type, source_id, "ghl")


def decode_load(
    entity_type: str, source_id: str, row: Sequence[Any]
) -> tuple[IdMapRow | None, SyncState | None]:
    """`load`'s answer from the row of `_LOAD` (its six columns, in order)."""
    ghl_id, state, pending_body, content_hash, source_updated_at, snapshot = row
    mapped = _idmap.decode(entity_type, source_id, ghl_id, state, pending_body)
    if content_hash is None:
        return mapped, None
    return mapped, SyncState(content_hash, source_updated_at, json.loads(snapshot or "{}"))


def _params(location_id: str, entity_type: str, source_id: str, side: Side) -> dict[str, Any]:
    return {"k_location": location_id, "k_type": entity_type, "k_source": source_id, "k_side": side}


def get(
    conn: sa.Connection, location_id: str, entity_type: str, source_id: str, side: Side = "ghl"
) -> SyncState | None:
    """The last-synced state, if this entity was ever synced to `side`."""
    row = conn.execute(_GET, _params(location_id, entity_type, source_id, side)).first()
    if row is None:
        return None
    return SyncState(row.content_hash, row.source_updated_at, json.loads(row.snapshot or "{}"))


def put_params(
    location_id: str,
    entity_type: str,
    source_id: str,
    state: SyncState,
    *,
    now: float,
    side: Side = "ghl",
) -> dict[str, Any]:
    """The bound parameters of `put`'s statements (and of `RAW_UPSERT`)."""
    params = _params(location_id, entity_type, source_id, side)
    params.update(
        v_hash=state.content_hash,
        v_updated_at=state.source_updated_at,
        v_snapshot=json.dumps(state.snapshot, sort_keys=True, default=str),
        v_synced_at=now,
    )
    return params


def put(
    conn: sa.Connection,
    location_id: str,
    entity_type: str,
    source_id: str,
    state: SyncState,
    *,
    now: float,
    side: Side = "ghl",
) -> None:
    """Insert or replace the last-synced state (in the caller's transaction)."""
    # A write without a source timestamp (an event whose rule has none) must not forget the
    # version an earlier write recorded: versions only move forward (COALESCE in `_UPDATE`).
    params = put_params(location_id, entity_type, source_id, state, now=now, side=side)
    upsert = _UPSERT.get(conn.dialect.name)
    if upsert is not None:
        conn.execute(upsert, params)
    elif conn.execute(_UPDATE, params).rowcount == 0:
        conn.execute(_INSERT, params)


def delete(conn: sa.Connection, location_id: str, entity_type: str, source_id: str) -> None:
    """Forget every side's state of one entity."""
    conn.execute(
        sa.delete(sync_state).where(
            sync_state.c.location_id == location_id,
            sync_state.c.entity_type == entity_type,
            sync_state.c.source_id == source_id,
        )
    )
