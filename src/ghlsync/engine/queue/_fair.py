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

On PostgreSQL, for the locations the caller names, all of this is one statement's common table
expressions (`RANKED_PG`), which the claim locks and leases from in the same statement: a round
trip costs psycopg ~60 µs of CPU, and a claim made four to six (the locations, the candidates,
more heads, the lease, BEGIN and COMMIT). SQLite's claim runs `fair_order`, the same steps one
statement at a time.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import sqlalchemy as sa

from ghlsync.store._raw import RawCursor, RawStatement
from ghlsync.store._tables_engine import work_items

w = work_items.c

SLACK = 2  # candidates per claim: up to this many times what a fair share of the batch needs

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


# At the driver level, folded into two statements (a claim ran five to seven; each cost
# ~0.1 ms of SQLAlchemy's CPU). The locations with work (pending or abandoned) in one (also
# `locations_with_work`'s, on both dialects, and part of PostgreSQL's `claim_noting_work`):
ACTIVE_LOCATIONS = (
    _PENDING_LOCATIONS.text
    + """
    UNION
    SELECT location_id FROM work_items WHERE status = 'leased' AND lease_expires_at <= :b_now
    """
)
_RAW_ACTIVE_LOCATIONS = RawStatement(sa.text(ACTIVE_LOCATIONS))
# The candidates in the other. Kind 0: each location's oldest due items (`_HEADS_SQLITE`);
# 1: abandoned leases (the oldest `limit` expiries); 2: live leases per location. SQLite takes
# `ORDER BY ... LIMIT` in a compound's member only inside a subquery.
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
# PostgreSQL, `fair_order` for the locations `:b_locs` in one statement's common table
# expressions: each location's oldest `:b_k` due items (`heads`), more for the locations that
# filled their share when the batch is short of `:b_wanted` (`refetch`, `more`: the first
# `ceil(wanted / n)` of their oldest `wanted`), the oldest abandoned leases and the live leases
# per location, then every candidate's turn (`ranked`). Every LIMIT is a parameter, not a
# subquery: the planner sees its value (a LIMIT it cannot see it takes for a tenth of the rows,
# and on a large queue the estimates crossed `jit_above_cost`: ~50-250 ms of JIT per claim).
RANKED_PG = """
    WITH locs(loc) AS (SELECT DISTINCT unnest(CAST(:b_locs AS varchar[]))),
    heads AS (
        SELECT h.id, h.location_id, h.available_at FROM locs CROSS JOIN LATERAL (
            SELECT id, location_id, available_at FROM work_items
            WHERE status = 'pending' AND location_id = locs.loc AND available_at <= :b_now
            ORDER BY available_at, id LIMIT :b_k
        ) h
    ),
    refetch(loc) AS (
        SELECT location_id FROM heads GROUP BY location_id
        HAVING count(*) >= :b_k AND (SELECT count(*) FROM heads) < :b_wanted
    ),
    oldest AS (
        SELECT h.id, h.location_id, h.available_at,
               row_number() OVER (PARTITION BY h.location_id ORDER BY h.available_at, h.id) AS n
        FROM refetch CROSS JOIN LATERAL (
            SELECT id, location_id, available_at FROM work_items
            WHERE status = 'pending' AND location_id = refetch.loc AND available_at <= :b_now
            ORDER BY available_at, id LIMIT :b_wanted
        ) h
    ),
    more AS (
        SELECT id, location_id, available_at FROM oldest
        WHERE n <= (SELECT (CAST(:b_wanted AS bigint) + count(*) - 1) / NULLIF(count(*), 0)
                    FROM refetch)
    ),
    abandoned AS (
        SELECT id, location_id, available_at FROM work_items
        WHERE status = 'leased' AND lease_expires_at <= :b_now
          AND location_id = ANY(CAST(:b_locs AS varchar[]))
        ORDER BY lease_expires_at LIMIT :b_limit
    ),
    in_flight(loc, n) AS (
        SELECT location_id, count(*) FROM work_items
        WHERE status = 'leased' AND lease_expires_at > :b_now
          AND location_id = ANY(CAST(:b_locs AS varchar[]))
        GROUP BY location_id
    ),
    candidates AS (
        SELECT * FROM heads WHERE location_id NOT IN (SELECT loc FROM refetch)
        UNION ALL SELECT * FROM more
        UNION ALL SELECT * FROM abandoned
    ),
    ranked(id, turn, available_at) AS (
        SELECT c.id,
               COALESCE(f.n, 0)
               + row_number() OVER (PARTITION BY c.location_id ORDER BY c.available_at, c.id),
               c.available_at
        FROM candidates c LEFT JOIN in_flight f ON f.loc = c.location_id
    )
"""


def ranked_pg_params(locations: Sequence[str], limit: int) -> dict[str, object]:
    """`RANKED_PG`'s parameters but `:b_now` for a batch of `limit` from `locations` (none:
    nothing is claimed, `claim_noting_work` only reads the locations with work)."""
    locs = sorted(set(locations))
    return {
        "b_locs": locs,
        "b_limit": limit,
        "b_k": share(limit, max(1, len(locs))),
        "b_wanted": limit * SLACK,
    }


def share(limit: int, locations: int, slack: int = SLACK) -> int:
    """Each location's candidates when `locations` share a batch of `limit`."""
    return math.ceil(limit / locations) * slack


_RAW_CANDIDATES = RawStatement(_CANDIDATES_SQLITE)
_RAW_HEADS = RawStatement(_HEADS_SQLITE)


class _Row(NamedTuple):
    """A candidate: a work row's id, location and due time."""

    id: int
    location_id: str
    available_at: float


def raw_cursor(conn: sa.Connection) -> RawCursor:
    """A driver-level cursor in `conn`'s transaction."""
    return RawCursor(conn.connection, conn.dialect)


@contextmanager
def autocommit_cursor(engine: sa.Engine) -> Iterator[RawCursor]:
    """PostgreSQL: a driver-level cursor on a pooled connection in autocommit, for work that is
    one statement (its own transaction): no BEGIN and no COMMIT or ROLLBACK round trips, and no
    ROLLBACK to make psycopg drop its prepared statements (`DEALLOCATE ALL`). The connection
    goes back to the pool transactional, or is dropped when that cannot be restored."""
    fairy = engine.raw_connection()
    try:
        driver: Any = fairy.driver_connection
        driver.autocommit = True
        try:
            yield RawCursor(fairy, engine.dialect)
        finally:
            _restore_transactional(fairy, driver)
    finally:
        fairy.close()


def _restore_transactional(fairy: sa.PoolProxiedConnection, driver: Any) -> None:
    if not fairy.is_valid:  # dropped already (a lost connection): it goes back to no pool
        return
    try:
        driver.autocommit = False
    except Exception as exc:  # a lost connection: it must not go back to the pool in autocommit
        fairy.invalidate(exc)


def active_locations(conn: sa.Connection, now: float) -> list[str]:
    """Locations with pending rows (due or not) or abandoned leases, sorted."""
    return active_locations_on(raw_cursor(conn), now)


def active_locations_on(raw: RawCursor, now: float) -> list[str]:
    """`active_locations` on a driver-level cursor."""
    rows = raw.execute(_RAW_ACTIVE_LOCATIONS, {"b_now": now}).all()
    return sorted(row[0] for row in rows)


def fair_order(
    conn: sa.Connection,
    now: float,
    locations: Sequence[str] | None,
    limit: int,
    *,
    slack: int = SLACK,
) -> list[int]:
    """Candidate ids in claim order: up to `slack` times what a fair share of `limit` needs
    (SQLite; PostgreSQL's claim has the same steps in SQL, `RANKED_PG`).

    The slack lets concurrent claimers (which skip each other's locked rows) still fill a batch.
    """
    locs = list(locations) if locations is not None else active_locations(conn, now)
    if not locs:
        return []
    wanted = limit * slack
    k = share(limit, len(locs), slack)
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
    params = {"now": now, "k": k, "locs": json.dumps(locs), "limit": limit}
    for kind, item_id, location_id, available_at, count in raw.execute(
        _RAW_CANDIDATES, params
    ).all():
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
    params = {"now": now, "k": k, "locs": json.dumps(locs)}
    return [_Row(*row) for row in raw.execute(_RAW_HEADS, params).all()]


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
