"""The work queue: claim entities fairly under leases, then complete, retry or dead-letter them.

A claim takes `pending` rows whose `available_at` has come, plus `leased` rows whose lease ran
out (their worker died: the work is taken over). It is fair across locations (`_fair`: every
location's oldest item before any location's second), and only the locations the caller names
are considered (those with rate budget left). `claim_noting_work` also says which locations
have work, as the claim saw them (the worker asks the rate limiter about those before its next
claim): on PostgreSQL in the claim's own statement.

Concurrency: on PostgreSQL the chosen rows are locked `FOR UPDATE SKIP LOCKED`, so concurrent
claimers take disjoint rows without waiting; on SQLite the claim runs in `BEGIN IMMEDIATE`, so
claimers take turns. Each claim gets a fresh lease token; every later write is fenced by it, so
a worker whose lease was taken over cannot overwrite the new owner's result.

Attempts count claims: a claim adds one, `complete` resets to zero, a retry that should not
count (a 429) gives it back. A worker killed mid-item therefore still uses up an attempt.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.engine.queue._codec import dumps, load_events, loads
from ghlsync.engine.queue._fair import (
    ACTIVE_LOCATIONS,
    RANKED_PG,
    active_locations,
    active_locations_on,
    autocommit_cursor,
    fair_order,
    ranked_pg_params,
    raw_cursor,
)
from ghlsync.store._engine import begin_immediate
from ghlsync.store._raw import RawCursor, RawStatement, driver_transaction
from ghlsync.store._tables_engine import audit_log, dead_letters, work_items

__all__ = [
    "AuditEntry",
    "Claim",
    "Claimed",
    "claim",
    "claim_noting_on",
    "claim_noting_work",
    "claim_on",
    "complete",
    "dead_letter",
    "locations_with_work",
    "next_due",
    "release",
    "renew",
    "retry",
]

w = work_items.c


@dataclass(frozen=True, slots=True)
class Claim:
    """A snapshot of one leased work row: what to sync and the lease that fences the result."""

    id: int
    location_id: str
    entity_type: str
    source_id: str
    generation: int
    event: str
    events: tuple[str, ...]  # every event to run, in order; `event` is the last
    payload: dict[str, Any]
    source_updated_at: float | None
    attempts: int  # including this one
    lease_owner: str
    lease_token: str
    lease_expires_at: float
    created_at: float | None = None  # the row's first delivery (metrics: webhook -> GHL)


@dataclass(frozen=True, slots=True)
class Claimed:
    """What `claim_noting_work` leased, and the locations with work it saw."""

    items: list[Claim]
    with_work: list[str]  # sorted: pending rows (due or not) or abandoned leases


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-log line, written in the same transaction as the queue update."""

    action: str
    entity_type: str | None = None  # defaults to the claim's
    source_id: str | None = None
    ghl_id: str | None = None
    calls: int = 0
    detail: str = ""


def locations_with_work(
    bind: sa.Engine | sa.Connection, *, clock: Clock = SYSTEM_CLOCK
) -> list[str]:
    """Locations with queued work (to ask the rate limiter which of them may go)."""
    if isinstance(bind, sa.Connection):
        return active_locations(bind, clock.now())
    if bind.dialect.name == "postgresql":  # one statement: one round trip, in autocommit
        with autocommit_cursor(bind) as raw:
            return active_locations_on(raw, clock.now())
    with bind.connect() as conn:
        return active_locations(conn, clock.now())


def queued_until(
    engine: sa.Engine, location_id: str, entity_type: str, source_id: str, *, not_id: int
) -> float | None:
    """When an entity's queued work item comes due next (pending: its `available_at`; leased:
    its lease's expiry), or None when it has none queued (done, dead, never accepted). The
    asking item's own row (`not_id`) never counts."""
    query = sa.select(w.status, w.available_at, w.lease_expires_at).where(
        w.location_id == location_id,
        w.entity_type == entity_type,
        w.source_id == source_id,
        w.id != not_id,
        w.status.in_(("pending", "leased")),
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    due = row.available_at if row.status == "pending" else row.lease_expires_at
    return float(due or 0.0)


def next_due(engine: sa.Engine) -> float | None:
    """The earliest time queued work could next be claimed: a pending item's `available_at`
    or a lease's expiry (its worker may have died). None when nothing is queued."""
    due = sa.func.min(sa.case((w.status == "pending", w.available_at), else_=w.lease_expires_at))
    with engine.connect() as conn:
        value = conn.execute(sa.select(due).where(w.status.in_(("pending", "leased")))).scalar()
    return None if value is None else float(value)


# Built once with bind parameters (building them per claim cost more than running them).
_LEASED: dict[str, Any] = {  # what a lease writes, in both statements below
    "status": "leased",
    "lease_owner": sa.bindparam("b_owner"),
    "lease_token": sa.bindparam("b_token"),
    "lease_expires_at": sa.bindparam("b_expires"),
    "attempts": w.attempts + 1,
    "updated_at": sa.bindparam("b_now"),
}
# At the driver level (`_fair.raw_cursor`). SQLite: the ids as JSON (`json_each`).
_SQLITE_IDS = sa.func.json_each(sa.bindparam("b_ids", type_=sa.String)).table_valued("value")
_RAW_LEASE_SQLITE = RawStatement(
    sa.update(work_items)
    .where(w.id.in_(sa.select(_SQLITE_IDS.c.value)))
    .values(_LEASED)
    .returning(*work_items.c)
)
_COLUMNS = tuple(column.name for column in work_items.c)
# PostgreSQL: the whole claim in one statement, `picked` then the lease. The fair order
# (`RANKED_PG`) is read from the statement's snapshot; the rows are locked in that order, `SKIP
# LOCKED` passing over those another claimer holds, until `limit` are locked (the lock sits
# under the LIMIT: the old chunk-by-chunk loop's answer); a row changed since the snapshot is
# locked in its latest version and its eligibility checked again on it (READ COMMITTED's
# re-check), so a row another claimer leased meanwhile is passed over too. The rows are found
# by id only: written as an OR, the eligibility matched the claim index, and a generic plan
# scanned every due row (joining each with the candidates) instead.
_PICK_PG = """
    SELECT w.id, r.turn, r.available_at FROM ranked r JOIN work_items w ON w.id = r.id
    WHERE w.id = ANY(ARRAY(SELECT id FROM ranked))
      AND CASE w.status WHEN 'pending' THEN w.available_at <= :b_now
                        WHEN 'leased' THEN w.lease_expires_at <= :b_now
                        ELSE false END
    ORDER BY r.turn, r.available_at, r.id
    LIMIT :b_limit
    FOR UPDATE OF w SKIP LOCKED
"""


_PICKED_PG = (
    sa.text(RANKED_PG + _PICK_PG)
    .columns(sa.column("id", sa.BigInteger), sa.column("turn"), sa.column("available_at"))
    .cte("picked")
    .prefix_with("MATERIALIZED")
)
_LEASE_PG = (
    sa.update(work_items)
    .where(w.id == _PICKED_PG.c.id)
    .values(_LEASED)
    .returning(*work_items.c, _PICKED_PG.c.turn, _PICKED_PG.c.available_at.label("picked_at"))
)
_RAW_CLAIM_PG = RawStatement(_LEASE_PG)
# `claim_noting_work`: the same lease as a data-modifying CTE, next to the locations with work
# (`ACTIVE_LOCATIONS`, as an array) read from the same snapshot: one row per leased item, each
# with the array first, or one row of the array and NULLs when nothing was leased. One
# statement: the worker's claim was two (the locations to ask the rate limiter about, then
# the claim from those with budget), each a round trip at ~60 us of psycopg's CPU.
_LEASED_PG = _LEASE_PG.cte("leased")
_WITH_WORK_PG = (
    sa.text(f"SELECT ARRAY({ACTIVE_LOCATIONS}) AS locs")
    .columns(sa.column("locs"))
    .subquery("with_work")
)
_RAW_CLAIM_NOTING_PG = RawStatement(
    sa.select(_WITH_WORK_PG.c.locs, *_LEASED_PG.c).select_from(
        _WITH_WORK_PG.outerjoin(_LEASED_PG, sa.true())
    )
)


def _lease_pg(
    raw: RawCursor, params: dict[str, Any], locations: Sequence[str] | None, limit: int
) -> tuple[list[int], list[dict[str, Any]]]:
    """PostgreSQL: lease up to `limit` candidates in fair order, skipping the rows another
    claimer holds, in one statement (`_RAW_CLAIM_PG`; one more for the locations with work
    when `locations` is None); their ids in that order and their rows."""
    locs = active_locations_on(raw, params["b_now"]) if locations is None else locations
    if not locs:
        return [], []
    args = {**params, **ranked_pg_params(locs, limit)}
    return _in_order(raw.execute(_RAW_CLAIM_PG, args).all())


def _lease_noting_pg(
    raw: RawCursor, params: dict[str, Any], locations: Sequence[str], limit: int
) -> tuple[list[int], list[dict[str, Any]], list[str]]:
    """`_lease_pg` for `locations`, and the locations with work: one statement
    (`_RAW_CLAIM_NOTING_PG`), also when `locations` is empty."""
    args = {**params, **ranked_pg_params(locations, limit)}
    got = raw.execute(_RAW_CLAIM_NOTING_PG, args).all()
    with_work = sorted(got[0][0]) if got else []
    ids, rows = _in_order([row[1:] for row in got if row[1] is not None])
    return ids, rows, with_work


def _in_order(got: list[Any]) -> tuple[list[int], list[dict[str, Any]]]:
    """Leased rows (their columns, then turn and due time) in claim order: ids and rows."""
    got.sort(key=lambda row: (row[-2], row[-1], row[0]))  # turn, due time, id
    rows = [dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True)) for row in got]
    return [int(row[0]) for row in got], rows


def _lease_sqlite(
    raw: RawCursor,
    conn: sa.Connection,
    params: dict[str, Any],
    locations: Sequence[str] | None,
    limit: int,
) -> tuple[list[int], list[dict[str, Any]]]:
    """SQLite: the first `limit` candidates, leased in one statement (nobody else is claiming:
    the transaction holds the write lock); their ids in fair order and their rows."""
    ids = fair_order(conn, params["b_now"], locations, limit)[:limit]
    if not ids:
        return [], []
    got = raw.execute(_RAW_LEASE_SQLITE, {**params, "b_ids": json.dumps(ids)}).all()
    return ids, [dict(zip(_COLUMNS, row, strict=True)) for row in got]


def claim(
    engine: sa.Engine | sa.Connection,
    worker_id: str,
    locations: Sequence[str] | None,
    limit: int,
    lease_seconds: float,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> list[Claim]:
    """Lease up to `limit` items fairly across `locations` (None: all); oldest turns first.

    Both at the driver level: on SQLite `_lease_sqlite` in a transaction (BEGIN IMMEDIATE
    holds the write lock), on PostgreSQL `_lease_pg`, one statement (rows locked, others'
    skipped; a second before it finds the locations when `locations` is None), each its own
    transaction (autocommit) when given an engine."""
    if limit <= 0 or (locations is not None and not locations):
        return []
    if isinstance(engine, sa.Engine) and engine.dialect.name == "postgresql":
        with autocommit_cursor(engine) as raw:  # one statement, its own transaction
            return claim_on(raw, worker_id, locations, limit, lease_seconds, clock.now())
    params = _lease_params(worker_id, lease_seconds, clock.now())
    sqlite = engine.dialect.name == "sqlite"  # every statement at the driver: its BEGIN too
    with driver_transaction(engine) if sqlite else begin_immediate(engine) as conn:
        raw = raw_cursor(conn)
        if conn.dialect.name == "postgresql":
            ids, rows = _lease_pg(raw, params, locations, limit)
        else:
            ids, rows = _lease_sqlite(raw, conn, params, locations, limit)
    return _claims(ids, rows)


def claim_noting_work(
    engine: sa.Engine | sa.Connection,
    worker_id: str,
    locations: Sequence[str],
    limit: int,
    lease_seconds: float,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> Claimed:
    """`claim` from `locations` (up to `limit` >= 1), and the locations with work, read
    in the claim's own statement on PostgreSQL (also when `locations` is empty); on SQLite
    read first, then `claim` (no write transaction when `locations` is empty)."""
    if isinstance(engine, sa.Engine) and engine.dialect.name == "postgresql":
        with autocommit_cursor(engine) as raw:  # one statement, its own transaction
            return claim_noting_on(raw, worker_id, locations, limit, lease_seconds, clock.now())
    with_work = locations_with_work(engine, clock=clock)  # at the driver: no transaction left
    items = claim(engine, worker_id, locations, limit, lease_seconds, clock=clock)
    return Claimed(items, with_work)


def claim_on(
    raw: RawCursor,
    worker_id: str,
    locations: Sequence[str] | None,
    limit: int,
    lease_seconds: float,
    now: float,
) -> list[Claim]:
    """PostgreSQL: `claim` on a driver-level cursor in autocommit (`claim` on an engine, the
    claim's own thread in `_claim_pg`), each statement its own transaction."""
    if limit <= 0 or (locations is not None and not locations):
        return []
    ids, rows = _lease_pg(raw, _lease_params(worker_id, lease_seconds, now), locations, limit)
    return _claims(ids, rows)


def claim_noting_on(
    raw: RawCursor,
    worker_id: str,
    locations: Sequence[str],
    limit: int,
    lease_seconds: float,
    now: float,
) -> Claimed:
    """PostgreSQL: `claim_noting_work` on a driver-level cursor in autocommit (on an engine,
    and on the claim's own thread in `_claim_pg`)."""
    params = _lease_params(worker_id, lease_seconds, now)
    ids, rows, with_work = _lease_noting_pg(raw, params, locations, limit)
    return Claimed(_claims(ids, rows), with_work)


def _lease_params(worker_id: str, lease_seconds: float, now: float) -> dict[str, Any]:
    """What a lease writes (`_LEASED`), a fresh token each claim."""
    return {
        "b_owner": worker_id,
        "b_token": str(uuid.uuid4()),
        "b_expires": now + lease_seconds,
        "b_now": now,
    }


def _claims(ids: list[int], rows: list[dict[str, Any]]) -> list[Claim]:
    """The leased rows as claims, in the order of `ids`."""
    if not ids:
        return []
    order = {item_id: index for index, item_id in enumerate(ids)}
    return sorted((_snapshot(row) for row in rows), key=lambda c: order[c.id])


def _snapshot(row: Mapping[str, Any]) -> Claim:
    events = load_events(row["events"], row["event"])
    return Claim(
        id=int(row["id"]),
        location_id=row["location_id"],
        entity_type=row["entity_type"],
        source_id=row["source_id"],
        generation=int(row["generation"]),
        event=row["event"],
        events=tuple(name for name, _ in events),
        payload=loads(row["payload"]),
        source_updated_at=row["source_updated_at"],
        attempts=int(row["attempts"]),
        lease_owner=row["lease_owner"],
        lease_token=row["lease_token"],
        lease_expires_at=float(row["lease_expires_at"]),
        created_at=row.get("created_at"),
    )


def _mine(item: Claim) -> sa.ColumnElement[bool]:
    return sa.and_(w.id == item.id, w.status == "leased", w.lease_token == item.lease_token)


_RELEASED: dict[str, Any] = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


_COMPLETE = (
    sa.update(work_items)
    .where(
        w.id == sa.bindparam("b_id"),
        w.status == "leased",
        w.lease_token == sa.bindparam("b_token"),
    )
    .values(
        # Done only if no delivery came meanwhile; else the newer data must be synced too.
        status=sa.case((w.generation == sa.bindparam("b_gen"), "done"), else_="pending"),
        done_generation=sa.bindparam("b_gen"),
        attempts=0,
        last_error=None,
        available_at=sa.bindparam("b_now"),
        updated_at=sa.bindparam("b_now"),
        **_RELEASED,
    )
)


def complete(
    engine: sa.Engine,
    item: Claim,
    audit: Iterable[AuditEntry] = (),
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> bool:
    """Mark the item synced: `done` if no delivery came meanwhile, else back to `pending`.

    False when the lease was lost (another worker took the item over); nothing is written.
    """
    with begin_immediate(engine) as conn:
        return complete_in(conn, item, audit, clock.now())


def complete_in(conn: sa.Connection, item: Claim, audit: Iterable[AuditEntry], now: float) -> bool:
    """`complete` inside the caller's transaction (the worker settles many items in one).

    At the driver level, in the same transaction (`ghlsync.store._raw`): SQLAlchemy's
    per-statement work cost more CPU than the driver's own for these two, the statements of
    every synced change (on SQLite, ~3× the statements themselves)."""
    params = {"b_id": item.id, "b_token": item.lease_token, "b_gen": item.generation, "b_now": now}
    cursor = RawCursor(conn.connection, conn.dialect)
    if not cursor.execute(_RAW_COMPLETE, params).rowcount:
        return False
    for row in _audit_rows(item, audit, now):
        cursor.execute(_RAW_AUDIT, row)
    return True


def retry(
    engine: sa.Engine,
    item: Claim,
    error: str,
    delay: float,
    *,
    count_attempt: bool = True,
    audit: Iterable[AuditEntry] = (),
    clock: Clock = SYSTEM_CLOCK,
) -> bool:
    """Put the item back to `pending` after `delay` seconds, recording `error`.

    `count_attempt=False` (a 429: the location was paused, the item did nothing wrong) gives
    back the attempt its claim took. False when the lease was lost.
    """
    with begin_immediate(engine) as conn:
        return retry_in(conn, item, error, delay, count_attempt, audit, clock.now())


def retry_in(
    conn: sa.Connection,
    item: Claim,
    error: str,
    delay: float,
    count_attempt: bool,
    audit: Iterable[AuditEntry],
    now: float,
) -> bool:
    """`retry` inside the caller's transaction."""
    # A 429 gives back the attempt its claim took: the item did nothing wrong.
    given_back = sa.case((w.attempts > 0, w.attempts - 1), else_=0)
    updated = conn.execute(
        sa.update(work_items)
        .where(_mine(item))
        .values(
            status="pending",
            available_at=now + max(0.0, delay),
            attempts=w.attempts if count_attempt else given_back,
            last_error=error,
            updated_at=now,
            **_RELEASED,
        )
    ).rowcount
    if updated:
        write_audit(conn, item, audit, now)
    return bool(updated)


def dead_letter(
    engine: sa.Engine,
    item: Claim,
    reason: str,
    error_class: str,
    audit: Iterable[AuditEntry] = (),
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> bool:
    """Park the item in `dead_letters` with a reason people can read; True if parked.

    When a newer delivery arrived while the item was leased, the newer data may well succeed,
    so the row goes back to `pending` (attempts reset, the error kept) instead. False also when
    the lease was lost.
    """
    with begin_immediate(engine) as conn:
        return dead_letter_in(conn, item, reason, error_class, audit, clock.now())


def dead_letter_in(
    conn: sa.Connection,
    item: Claim,
    reason: str,
    error_class: str,
    audit: Iterable[AuditEntry],
    now: float,
) -> bool:
    """`dead_letter` inside the caller's transaction."""
    row = conn.execute(sa.select(w.generation).where(_mine(item)).with_for_update()).one_or_none()
    if row is None:
        return False
    if row.generation != item.generation:
        _requeue_newer(conn, item, reason, now)
        return False
    _park(conn, item, reason, error_class, now)
    write_audit(conn, item, audit, now)
    return True


def _requeue_newer(conn: sa.Connection, item: Claim, reason: str, now: float) -> None:
    conn.execute(
        sa.update(work_items)
        .where(_mine(item))
        .values(
            status="pending",
            attempts=0,
            last_error=reason,
            available_at=now,
            updated_at=now,
            **_RELEASED,
        )
    )


def _park(conn: sa.Connection, item: Claim, reason: str, error_class: str, now: float) -> None:
    conn.execute(
        sa.insert(dead_letters).values(
            work_id=item.id,
            location_id=item.location_id,
            entity_type=item.entity_type,
            source_id=item.source_id,
            event=item.event,
            payload=dumps(item.payload),
            reason=reason,
            error_class=error_class,
            attempts=item.attempts,
            created_at=now,
        )
    )
    conn.execute(
        sa.update(work_items)
        .where(_mine(item))
        .values(status="dead", last_error=reason, updated_at=now, **_RELEASED)
    )


def renew(
    engine: sa.Engine, item: Claim, lease_seconds: float, *, clock: Clock = SYSTEM_CLOCK
) -> Claim | None:
    """Extend the lease; the updated claim, or None when it was lost."""
    expires = clock.now() + lease_seconds
    with begin_immediate(engine) as conn:
        updated = conn.execute(
            sa.update(work_items).where(_mine(item)).values(lease_expires_at=expires)
        ).rowcount
    if not updated:
        return None
    return dataclasses.replace(item, lease_expires_at=expires)


def release(
    engine: sa.Engine,
    items: Sequence[Claim],
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Hand unfinished items back (a draining worker): pending, available now, the attempt
    their claim took given back. Fenced like every write; returns how many were released."""
    if not items:
        return 0
    now = clock.now()
    given_back = sa.case((w.attempts > 0, w.attempts - 1), else_=0)
    released = 0
    with begin_immediate(engine) as conn:
        for item in items:
            released += conn.execute(
                sa.update(work_items)
                .where(_mine(item))
                .values(
                    status="pending",
                    available_at=now,
                    attempts=given_back,
                    updated_at=now,
                    **_RELEASED,
                )
            ).rowcount
    return released


def write_audit(
    conn: sa.Connection, item: Claim, entries: Iterable[AuditEntry], now: float
) -> None:
    """Insert audit lines for `item` (defaults: the claim's entity type and source id)."""
    rows = _audit_rows(item, entries, now)
    if rows:
        conn.execute(_AUDIT, rows)


def _audit_rows(item: Claim, entries: Iterable[AuditEntry], now: float) -> list[dict[str, Any]]:
    return [
        {
            "at": now,
            "location_id": item.location_id,
            "entity_type": entry.entity_type or item.entity_type,
            "source_id": entry.source_id or item.source_id,
            "action": entry.action[:32],
            "ghl_id": entry.ghl_id,
            "calls": entry.calls,
            "detail": entry.detail or None,
        }
        for entry in entries
    ]


_AUDIT = sa.insert(audit_log)
_AUDIT_COLUMNS = ("at", "location_id", "entity_type", "source_id", "action", "ghl_id", "calls")
_RAW_AUDIT = RawStatement(
    sa.insert(audit_log)
    .values({name: sa.bindparam(name) for name in (*_AUDIT_COLUMNS, "detail")})
    .inline()
)
_RAW_COMPLETE = RawStatement(_COMPLETE)
