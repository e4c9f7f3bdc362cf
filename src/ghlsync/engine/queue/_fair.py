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
from typing import NamedTuple

import sqlalchemy as sa

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


# At the driver level, in the caller's transaction, folded into two statements (a claim ran
# five to seven; each cost ~0.1 ms of SQLAlchemy's CPU, on PostgreSQL as much again of
# psycopg's). The locations with work (pending or abandoned) in one:
_RAW_ACTIVE_LOCATIONS = RawStatement(
    sa.text(
        _PENDING_LOCATIONS.text
        + """
    UNION
    SELECT location_id FROM work_items WHERE status = 'leased' AND lease_expires_at <= :b_now
    """
    )
)
# Kind 0: each location's oldest due items (`_HEADS_*`); 1: abandoned leases (the oldest
# `limit` expiries); 2: live leases per location.
_CANDIDATES_PG = sa.text(
    """
    SELECT 0 AS kind, h.id, h.location_id, h.available_at, 0 AS n
    FROM unnest(CAST(:locs AS varchar[])) AS l(loc)
    CROSS JOIN LATERAL (
        SELECT id, location_id, available_at FROM work_items
        WHERE status = 'pending' AND location_id = l.loc AND available_at <= :now
        ORDER BY available_at, id LIMIT :k
    ) h
    UNION ALL (
        SELECT 1, id, location_id, available_at, 0 FROM work_items
        WHERE status = 'leased' AND lease_expires_at <= :now
          AND location_id = ANY(CAST(:locs AS varchar[]))
        ORDER BY lease_expires_at LIMIT :limit
    )
    UNION ALL
    SELECT 2, 0, location_id, 0, count(*) FROM work_items
    WHERE status = 'leased' AND lease_expires_at > :now
      AND location_id = ANY(CAST(:locs AS varchar[]))
    GROUP BY location_id
    """
)
# SQLite takes `ORDER BY ... LIMIT` in a compound's member only inside a subquery.
_CANDIDATES_SQLITE = sa.text(
    """
    SELECT 0 AS kind, w.id, w.location_id, w.available_at, 0 AS n
    FROM json_each(:locs) AS l
    JOIN work_items w ON w.id IN (
        SELECT i.id FROM work_items i
        WHERE i.status = 'pending' AND i.location_id = l.value AND i.available_at <= :now
        ORDER BY i.available_at, i.id LIMIT :k
    )
    UNION ALL
    SELECT * FROM (
        SELECT 1, id, location_id, available_at, 0 FROM work_items
        WHERE status = 'leased' AND lease_expires_at <= :now
          AND location_id IN (SELECT value FROM json_each(:locs))
        ORDER BY lease_expires_at LIMIT :limit
    )
    UNION ALL
    SELECT 2, 0, location_id, 0, count(*) FROM work_items
    WHERE status = 'leased' AND lease_expires_at > :now
      AND location_id IN (SELECT value FROM json_each(:locs))
    GROUP BY location_id
    """
)
_RAW_CANDIDATES = {
    "postgresql": RawStatement(_CANDIDATES_PG),
    "sqlite": RawStatement(_CANDIDATES_SQLITE),
}
_RAW_HEADS = {"postgresql": RawStatement(_HEADS_PG), "sqlite": RawStatement(_HEADS_SQLITE)}


class _Row(NamedTuple):
    """A candidate: a work row's id, location and due time."""

    id: int
    location_id: str
    available_at: float


def raw_cursor(conn: sa.Connection) -> RawCursor:
    """A driver-level cursor in `conn`'s transaction."""
    return RawCursor(conn.connection, conn.dialect)


def active_locations(conn: sa.Connection, now: float) -> list[str]:
    """Locations with pending rows (due or not) or abandoned leases, sorted."""
    rows = raw_cursor(conn).execute(_RAW_ACTIVE_LOCATIONS, {"b_now": now}).all()
    return sorted(row[0] for row in rows)


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
    raw = raw_cursor(conn)
    heads, abandoned, in_flight = _candidates(raw, now, locs, k, limit)
    if len(heads) < wanted:
        # Few locations had due work: let those that filled their share take more, so one
        # busy location among many idle ones still fills the batch.
        full = _full_locations(heads, k)
        if full:
            more = _heads(raw, now, full, math.ceil(wanted / len(full)))
            refetched = set(full)
            heads = [row for row in heads if row.location_id not in refetched] + more
    return _round_robin(abandoned + heads, in_flight)


def _candidates(
    raw: RawCursor, now: float, locs: list[str], k: int, limit: int
) -> tuple[list[_Row], list[_Row], dict[str, int]]:
    """Each location's oldest `k` due items, the oldest `limit` abandoned leases, and the
    live leases of every location in `locs` (a superset of the candidates' locations, the
    same answer for them), in one statement."""
    heads: list[_Row] = []
    abandoned: list[_Row] = []
    in_flight: dict[str, int] = {}
    params = {"now": now, "k": k, "locs": _locs(raw, locs), "limit": limit}
    stmt = _RAW_CANDIDATES[raw.dialect.name]
    for kind, item_id, location_id, available_at, count in raw.execute(stmt, params).all():
        if kind == 0:
            heads.append(_Row(item_id, location_id, available_at))
        elif kind == 1:
            abandoned.append(_Row(item_id, location_id, available_at))
        else:
            in_flight[location_id] = int(count)
    return heads, abandoned, in_flight


def _full_locations(rows: Sequence[_Row], k: int) -> list[str]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.location_id] += 1
    return sorted(loc for loc, n in counts.items() if n >= k)


def _heads(raw: RawCursor, now: float, locs: list[str], k: int) -> list[_Row]:
    params = {"now": now, "k": k, "locs": _locs(raw, locs)}
    return [_Row(*row) for row in raw.execute(_RAW_HEADS[raw.dialect.name], params).all()]


def _locs(raw: RawCursor, locs: list[str]) -> list[str] | str:
    """The location list as the statements take it: an array, or JSON for `json_each`."""
    return locs if raw.dialect.name == "postgresql" else json.dumps(locs)


def _round_robin(rows: Sequence[_Row], in_flight: dict[str, int] | None = None) -> list[int]:
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
