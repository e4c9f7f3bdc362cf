"""The ID map: DripJobs id ↔ GHL id per location and entity type, with write-ahead pending rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ghlsync.store._raw import RawStatement
from ghlsync.store._tables_sync import id_map

MapState = Literal["pending", "confirmed"]


@dataclass(frozen=True, slots=True)
class IdMapRow:
    """One mapping; `ghl_id` is None while a create is pending (maybe done, not recorded)."""

    entity_type: str
    source_id: str
    ghl_id: str | None
    state: MapState
    pending_body: dict[str, Any] | None


def _key(location_id: str, entity_type: str, source_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        id_map.c.location_id == location_id,
        id_map.c.entity_type == entity_type,
        id_map.c.source_id == source_id,
    )


# Built once with bind parameters: building a statement per call cost more than running it
# (bench/bench_engine.py, "Engine throughput" in docs/benchmarks.md).
_KEY = sa.and_(
    id_map.c.location_id == sa.bindparam("k_location"),
    id_map.c.entity_type == sa.bindparam("k_type"),
    id_map.c.source_id == sa.bindparam("k_source"),
)
_VALUES: dict[str, Any] = {
    "ghl_id": sa.bindparam("v_ghl_id"),
    "state": sa.bindparam("v_state"),
    "pending_body": sa.bindparam("v_pending_body"),
    "pending_since": sa.bindparam("v_pending_since"),
    "updated_at": sa.bindparam("v_updated_at"),
}
_GET = sa.select(id_map.c.ghl_id, id_map.c.state, id_map.c.pending_body).where(_KEY)
_UPDATE = sa.update(id_map).where(_KEY).values(**_VALUES)
_INSERT = sa.insert(id_map).values(
    location_id=sa.bindparam("k_location"),
    entity_type=sa.bindparam("k_type"),
    source_id=sa.bindparam("k_source"),
    **_VALUES,
)
_PRIMARY_KEY = [id_map.c.location_id, id_map.c.entity_type, id_map.c.source_id]


def _upsert(insert: Any) -> Any:
    """`INSERT … ON CONFLICT (key) DO UPDATE`: one statement where UPDATE-then-INSERT took two
    for every new entity (and could race another process's INSERT on PostgreSQL)."""
    stmt = insert(id_map).values(
        location_id=sa.bindparam("k_location"),
        entity_type=sa.bindparam("k_type"),
        source_id=sa.bindparam("k_source"),
        **_VALUES,
    )
    return stmt.on_conflict_do_update(
        index_elements=_PRIMARY_KEY, set_={name: stmt.excluded[name] for name in _VALUES}
    )


_UPSERT = {"sqlite": _upsert(sqlite_insert), "postgresql": _upsert(postgresql_insert)}
# The same statements for the ledger's driver-level path (`ghlsync.store._raw`).
RAW_GET = RawStatement(_GET)
RAW_UPSERT = {name: RawStatement(stmt) for name, stmt in _UPSERT.items()}


def key_params(location_id: str, entity_type: str, source_id: str) -> dict[str, Any]:
    """The bound key of one mapping (`RAW_GET`)."""
    return _params(location_id, entity_type, source_id)


def _params(location_id: str, entity_type: str, source_id: str) -> dict[str, Any]:
    return {"k_location": location_id, "k_type": entity_type, "k_source": source_id}


def get(conn: sa.Connection, location_id: str, entity_type: str, source_id: str) -> IdMapRow | None:
    """The mapping of one DripJobs record, if any."""
    row = conn.execute(_GET, _params(location_id, entity_type, source_id)).first()
    if row is None:
        return None
    return decode(entity_type, source_id, row.ghl_id, row.state, row.pending_body)


def decode(
    entity_type: str, source_id: str, ghl_id: str | None, state: str | None, body: str | None
) -> IdMapRow | None:
    """An `IdMapRow` from its columns (None when `state` is NULL: no row)."""
    if state is None:
        return None
    pending = json.loads(body) if body else None
    return IdMapRow(entity_type, source_id, ghl_id, state, pending)  # type: ignore[arg-type]


def put_params(
    location_id: str,
    entity_type: str,
    source_id: str,
    *,
    ghl_id: str | None,
    state: MapState,
    pending_body: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The bound parameters of `put`'s statements (and of `RAW_UPSERT`)."""
    params = _params(location_id, entity_type, source_id)
    params.update(
        v_ghl_id=ghl_id,
        v_state=state,
        v_pending_body=json.dumps(pending_body, sort_keys=True) if pending_body else None,
        v_pending_since=now if state == "pending" else None,
        v_updated_at=now,
    )
    return params


def put(
    conn: sa.Connection,
    location_id: str,
    entity_type: str,
    source_id: str,
    *,
    ghl_id: str | None,
    state: MapState,
    pending_body: dict[str, Any] | None,
    now: float,
) -> None:
    """Insert or replace one mapping (in the caller's transaction)."""
    params = put_params(
        location_id,
        entity_type,
        source_id,
        ghl_id=ghl_id,
        state=state,
        pending_body=pending_body,
        now=now,
    )
    upsert = _UPSERT.get(conn.dialect.name)
    if upsert is not None:
        conn.execute(upsert, params)
    elif conn.execute(_UPDATE, params).rowcount == 0:
        conn.execute(_INSERT, params)


def delete(conn: sa.Connection, location_id: str, entity_type: str, source_id: str) -> None:
    """Forget one mapping (the GHL object is gone)."""
    conn.execute(sa.delete(id_map).where(_key(location_id, entity_type, source_id)))


def source_ids_for(
    conn: sa.Connection, location_id: str, entity_type: str, ghl_id: str
) -> list[str]:
    """Every DripJobs id mapped to one GHL object (echo checks, merged duplicates)."""
    rows = conn.execute(
        sa.select(id_map.c.source_id).where(
            id_map.c.location_id == location_id,
            id_map.c.entity_type == entity_type,
            id_map.c.ghl_id == ghl_id,
        )
    )
    return sorted(r.source_id for r in rows)
