"""Which work to claim next: round-robin across locations, oldest first within each.

Every location with work gets its oldest item into the batch before any location gets its
second (turn 1 of every location, then turn 2, ...; within a turn the oldest item first), so a
10,000-item backlog cannot starve a location with one item.

Turns count the location's items already in flight (leased, by any worker): a location with
three items leased starts at turn 4. Without that, workers that claim one or two items at a
time (a slot frees, a slot is filled) would hand every slot to the location with the oldest
head — all of one backlog's items in flight, each waiting for that location's rate budget,
while the other locations wait for a slot. Counting in-flight items spreads the slots over
the locations with work, across claims and across workers.

The candidates are found with index seeks only, so a claim costs the same with 100 or 100,000
items queued: the locations with pending work come from a "loose index scan" (a recursive
query that jumps from one location to the next on the claim index), then each location's
oldest few items from one `LIMIT`ed seek per location (a LATERAL join on PostgreSQL, a
correlated `IN (... LIMIT k)` over `json_each` on SQLite).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from ghlsync.store._raw import RawCursor, RawStatement
from ghlsync.store._tables_engine import work_items

w = work_items.c

# Each location's oldest `k` due items, one index seek per location, in one statement.
_HEADS_PG = sa.text(
    """
    SELECT h.id, h.location_id, h.available_at
    FROM unnest(CAST(:locs AS varchar[])) AS l(loc)
    CROSS JOIN LATERAL (
        SELECT id, location_id, available_at FROM work_items
        WHERE status = 'pending' AND location_id = l.loc AND available_at <= :now
        ORDER BY available_at, id LIMIT :k
    ) h
    """
)
# SQLite has no LATERAL; a correlated `IN (... LIMIT k)` per location does the same seeks.
_HEADS_SQLITE = sa.text(
    """
    SELECT w.id, w.location_id, w.available_at
    FROM json_each(:locs) AS l
    JOIN work_items w ON w.id IN (
        SELECT i.id FROM work_items i
        WHERE i.status = 'pending' AND i.location_id = l.value AND i.available_at <= :now
        ORDER BY i.available_at, i.id LIMIT :k
    )
    """
)

_PENDING_LOCATIONS = sa.text(
    """
    WITH RECURSIVE locs(loc) AS (
        SELECT MIN(location_id) FROM work_items WHERE status = 'pending'
        UNION ALL
        SELECT (SELECT MIN(n.location_id) FROM work_items n
                WHERE n.status = 'pending' AND n.location_id > locs.loc)
        FROM locs WHERE locs.loc IS NOT NULL
    )
    SELECT loc FROM locs WHERE loc IS NOT NULL
    """
)


def expired(now: float | sa.BindParameter[float]) -> sa.ColumnElement[bool]:
    """Leased rows whose worker stopped renewing: their work is taken over."""
    return sa.and_(w.status == "leased", w.lease_expires_at <= now)


def eligible(now: float | sa.BindParameter[float]) -> sa.ColumnElement[bool]:
    """Rows a claim may take now."""
    return sa.or_(sa.and_(w.status == "pending", w.available_at <= now), expired(now))


# Built once with bind parameters: building them per claim cost more CPU than running them
# (SQLAlchemy's coercions and cache keys; docs/benchmarks.md, "Engine throughput").
_NOW = sa.bindparam("b_now", type_=sa.Float)
_LOCS = sa.bindparam("b_locs", expanding=True, type_=sa.String)
_ABANDONED_LOCATIONS = sa.select(w.location_id).where(expired(_NOW)).distinct()
_ABANDONED = (
    sa.select(w.id, w.location_id, w.available_at)
    .where(expired(_NOW), w.location_id.in_(_LOCS))
    .order_by(w.lease_expires_at)
    .limit(sa.bindparam("b_limit", type_=sa.Integer))
)
_IN_FLIGHT = (
    sa.select(w.location_id, sa.func.count())
    .where(w.status == "leased", w.location_id.in_(_LOCS), w.lease_expires_at > _NOW)
    .group_by(w.location_id)
)


# PostgreSQL: the same statements at the driver level, in the caller's transaction (a claim
# runs five to seven of them; SQLAlchemy's per-statement work cost more CPU than psycopg's own).
# The location lists are arrays there (`= ANY`): an expanding IN is rendered anew per call.
_PG_LOCS = sa.bindparam("b_locs", type_=ARRAY(sa.String))
_RAW_PENDING_LOCATIONS = RawStatement(_PENDING_LOCATIONS)
_RAW_ABANDONED_LOCATIONS = RawStatement(_ABANDONED_LOCATIONS)
_RAW_HEADS = RawStatement(_HEADS_PG)
_RAW_ABANDONED = RawStatement(
    sa.select(w.id, w.location_id, w.available_at)
    .where(expired(_NOW), w.location_id == sa.any_(_PG_LOCS))
    .order_by(w.lease_expires_at)
    .limit(sa.bindparam("b_limit", type_=sa.Integer))
)
_RAW_IN_FLIGHT = RawStatement(
    sa.select(w.location_id, sa.func.count())
    .where(w.status == "leased", w.location_id == sa.any_(_PG_LOCS), w.lease_expires_at > _NOW)
    .group_by(w.location_id)
)


class _Row(NamedTuple):
    """A candidate as the driver-level path returns it (SQLAlchemy's rows read the same)."""

    id: int
    location_id: str
    available_at: float


def raw_cursor(conn: sa.Connection) -> RawCursor | None:
    """A driver-level cursor in `conn`'s transaction on PostgreSQL; None on SQLite."""
    if conn.dialect.name != "postgresql":
        return None
    return RawCursor(conn.connection, conn.dialect)


def active_locations(conn: sa.Connection, now: float) -> list[str]:
    """Locations with pending rows (due or not) or abandoned leases, sorted."""
    raw = raw_cursor(conn)
    if raw is not None:
        found = {row[0] for row in raw.execute(_RAW_PENDING_LOCATIONS, {}).all()}
        found.update(row[0] for row in raw.execute(_RAW_ABANDONED_LOCATIONS, {"b_now": now}).all())
        return sorted(found)
    pending = set(conn.execute(_PENDING_LOCATIONS).scalars())
    abandoned = conn.execute(_ABANDONED_LOCATIONS, {"b_now": now}).scalars()
    return sorted(pending.union(abandoned))


def fair_order(
    conn: sa.Connection, now: float, locations: Sequence[str] | None, limit: int, *, slack: int = 2
) -> list[int]:
    """Candidate ids in claim order: up to `slack` times what a fair share of `limit` needs.

    The slack lets concurrent claimers (which skip each other's locked rows) still fill a batch.
    """
    locs = list(locations) if locations is not None else active_locations(conn, now)
    if not locs:
        return []
    wanted = limit * slack
    k = math.ceil(limit / len(locs)) * slack
    heads = _heads(conn, now, locs, k)
    if len(heads) < wanted:
        # Few locations had due work: let those that filled their share take more, so one
        # busy location among many idle ones still fills the batch.
        full = _full_locations(heads, k)
        if full:
            more = _heads(conn, now, full, math.ceil(wanted / len(full)))
            refetched = set(full)
            heads = [row for row in heads if row.location_id not in refetched] + more
    rows = _abandoned(conn, now, locs, limit) + heads
    return _round_robin(rows, _in_flight(conn, now, {row.location_id for row in rows}))


def _full_locations(rows: Sequence[Any], k: int) -> list[str]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.location_id] += 1
    return sorted(loc for loc, n in counts.items() if n >= k)


def _abandoned(conn: sa.Connection, now: float, locs: list[str], limit: int) -> list[Any]:
    params = {"b_now": now, "b_locs": locs, "b_limit": limit}
    raw = raw_cursor(conn)
    if raw is not None:
        return [_Row(*row) for row in raw.execute(_RAW_ABANDONED, params).all()]
    return list(conn.execute(_ABANDONED, params))


def _heads(conn: sa.Connection, now: float, locs: list[str], k: int) -> list[Any]:
    params: dict[str, Any] = {"now": now, "k": k}
    raw = raw_cursor(conn)
    if raw is not None:
        return [_Row(*row) for row in raw.execute(_RAW_HEADS, {**params, "locs": locs}).all()]
    return list(conn.execute(_HEADS_SQLITE, {**params, "locs": json.dumps(locs)}))


def _in_flight(conn: sa.Connection, now: float, locs: set[str]) -> dict[str, int]:
    """Live leases per location (any worker's); expired ones are work to take over."""
    if not locs:
        return {}
    params = {"b_now": now, "b_locs": sorted(locs)}
    raw = raw_cursor(conn)
    rows = (
        raw.execute(_RAW_IN_FLIGHT, params).all()
        if raw is not None
        else conn.execute(_IN_FLIGHT, params)
    )
    return {loc: int(n) for loc, n in rows}


def _round_robin(rows: Sequence[Any], in_flight: dict[str, int] | None = None) -> list[int]:
    by_location: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for row in rows:
        by_location[row.location_id].append((float(row.available_at), int(row.id)))
    busy = in_flight or {}
    ranked: list[tuple[int, float, int]] = []
    for location, items in by_location.items():
        items.sort()
        first = busy.get(location, 0)  # its items already in flight used up the first turns
        ranked.extend((first + turn, at, item_id) for turn, (at, item_id) in enumerate(items))
    ranked.sort()
    return [item_id for _, _, item_id in ranked]
