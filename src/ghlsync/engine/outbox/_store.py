"""Outbox rows: queue a write-back (write-ahead), claim due ones, record what happened.

A row is committed, with its final body and id, in the same transaction as the decision that
made it (`flows.to_dripjobs`), before anything is sent. Claims lease rows like the work queue
does (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite); a sender killed
after its POST but before recording it leaves a `sending` row whose lease expires, and the
next claim sends the same body with the same webhook-id again: the receiver dedupes by id.
Every settle is fenced by the claim's lease token, so a sender whose lease was taken over
writes nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync.dripjobs._writeback import new_writeback_id, writeback_body
from ghlsync.store._engine import begin_immediate
from ghlsync.store._tables_twoway import writeback_outbox

__all__ = [
    "OutboxItem",
    "Queued",
    "claim_due",
    "enqueue",
    "find_lead",
    "mark_dead",
    "mark_delivered",
    "mark_retry",
    "normal_email",
    "normal_phone",
    "replay",
]

o = writeback_outbox.c


@dataclass(frozen=True, slots=True)
class Queued:
    """The outcome of `enqueue`: the row's id, its status, and whether it is new."""

    id: str
    status: str
    created: bool


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed write-back: what to send, where to, and the lease that fences its settle."""

    id: str
    location_id: str
    action: str
    body: bytes
    attempts: int
    lease: str


def normal_email(value: object) -> str | None:
    """Lower-cased, trimmed email (None when empty)."""
    text = str(value).strip().lower() if value else ""
    return text or None


def normal_phone(value: object) -> str | None:
    """The last ten digits of a phone (None when fewer than seven): +1 and formatting vary."""
    digits = re.sub(r"\D", "", str(value or ""))
    return digits[-10:] if len(digits) >= 7 else None


def enqueue(
    conn: sa.Connection,
    *,
    location_id: str,
    action: str,
    dedupe_key: str,
    ghl_entity: str,
    ghl_id: str,
    data: Mapping[str, str],
    url: str | None,
    now: float,
    order: int = 0,
) -> Queued:
    """Write a write-back ahead of sending it (in the caller's transaction).

    At most one row per (`location_id`, `dedupe_key`): a repeat returns the existing row.
    Without a URL the row is recorded as `skipped` (never sent; not an error). `order`
    separates the write-backs one decision queues for one record (its `created_at` moves by a
    microsecond each), so they are sent in the order they were decided.
    """
    existing = _by_key(conn, location_id, dedupe_key)
    if existing is not None:
        return Queued(existing[0], existing[1], False)
    writeback_id = new_writeback_id()
    body = writeback_body(action, writeback_id, now, data)
    created = _after_the_last(conn, location_id, ghl_entity, ghl_id, now + order * 1e-6)
    status = "pending" if url else "skipped"
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(writeback_outbox)
        .values(
            id=writeback_id,
            location_id=location_id,
            action=action,
            dedupe_key=dedupe_key[:200],
            ghl_entity=ghl_entity,
            ghl_id=ghl_id,
            match_email=normal_email(data.get("email")),
            match_phone=normal_phone(data.get("phone")),
            body=body.decode("utf-8"),
            status=status,
            attempts=0,
            available_at=now,
            last_error=None if url else f"no URL configured for {action}",
            created_at=created,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["location_id", "dedupe_key"])
        .returning(o.id)
    )
    if conn.execute(stmt).scalar() is None:  # a concurrent enqueue won
        row = _by_key(conn, location_id, dedupe_key)
        assert row is not None
        return Queued(row[0], row[1], False)
    return Queued(writeback_id, status, True)


def _after_the_last(
    conn: sa.Connection, location_id: str, ghl_entity: str, ghl_id: str, created: float
) -> float:
    """A `created_at` after every earlier write-back of the record: the sender keeps their
    order by it, and two decisions in one clock tick must not tie."""
    last = conn.execute(
        sa.select(sa.func.max(o.created_at)).where(
            o.location_id == location_id, o.ghl_entity == ghl_entity, o.ghl_id == ghl_id
        )
    ).scalar()
    return created if last is None or created > last else float(last) + 1e-6


def _by_key(conn: sa.Connection, location_id: str, dedupe_key: str) -> tuple[str, str] | None:
    row = conn.execute(
        sa.select(o.id, o.status).where(
            o.location_id == location_id, o.dedupe_key == dedupe_key[:200]
        )
    ).first()
    return (row.id, row.status) if row is not None else None


def find_lead(
    conn: sa.Connection,
    location_id: str,
    *,
    ghl_contact_id: str | None,
    email: object,
    phone: object,
    since: float,
) -> tuple[str, dict[str, Any]] | None:
    """The GHL contact of a `create_lead` we queued, and the data we sent: by the
    `ghl_contact_id` we sent, else by email, else by phone among those queued since `since`.
    None when there is none."""
    base = sa.select(o.ghl_id, o.body).where(
        o.location_id == location_id, o.action == "create_lead"
    )
    if ghl_contact_id:
        row = conn.execute(base.where(o.ghl_id == ghl_contact_id).limit(1)).first()
        if row is not None:
            return str(row.ghl_id), body_of(row.body).get("data", {})
    recent = base.where(o.created_at >= since).order_by(o.created_at.desc()).limit(1)
    for column, value in (
        (o.match_email, normal_email(email)),
        (o.match_phone, normal_phone(phone)),
    ):
        if value:
            row = conn.execute(recent.where(column == value)).first()
            if row is not None:
                return str(row.ghl_id), body_of(row.body).get("data", {})
    return None


def claim_due(
    engine: sa.Engine, owner: str, limit: int, lease_seconds: float, *, now: float
) -> list[OutboxItem]:
    """Lease up to `limit` due write-backs: pending and due, or `sending` with an expired
    lease (a sender died mid-POST: the same body and id go out again)."""
    earlier = writeback_outbox.alias("earlier")
    # Write-backs of one GHL record go out in order: an update never overtakes the create
    # it follows while that create waits for a retry.
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.location_id == o.location_id,
            earlier.c.ghl_entity == o.ghl_entity,
            earlier.c.ghl_id == o.ghl_id,
            earlier.c.created_at < o.created_at,
            earlier.c.status.in_(("pending", "sending")),
        )
        .exists()
    )
    due = sa.and_(
        sa.or_(
            sa.and_(o.status == "pending", o.available_at <= now),
            sa.and_(o.status == "sending", o.lease_expires_at <= now),
        ),
        ~blocked,
    )
    query = sa.select(o.id, o.location_id, o.action, o.body, o.attempts).where(due)
    query = query.order_by(o.available_at).limit(limit)
    with engine.connect() as conn:  # idle polls must not take SQLite's write lock
        if conn.execute(sa.select(o.id).where(due).limit(1)).first() is None:
            return []
    with begin_immediate(engine) as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        items = []
        for row in rows:
            lease = f"{owner}:{uuid.uuid4().hex[:8]}"
            conn.execute(
                sa.update(writeback_outbox)
                .where(o.id == row.id)
                .values(
                    status="sending",
                    lease_owner=lease,
                    lease_expires_at=now + lease_seconds,
                    attempts=o.attempts + 1,
                    updated_at=now,
                )
            )
            body = row.body.encode("utf-8")
            items.append(
                OutboxItem(row.id, row.location_id, row.action, body, row.attempts + 1, lease)
            )
        return items


def _settle(engine: sa.Engine, item: OutboxItem, values: dict[str, Any]) -> bool:
    with begin_immediate(engine) as conn:
        done = conn.execute(
            sa.update(writeback_outbox)
            .where(o.id == item.id, o.status == "sending", o.lease_owner == item.lease)
            .values(lease_owner=None, lease_expires_at=None, **values)
        )
        return done.rowcount == 1


def mark_delivered(engine: sa.Engine, item: OutboxItem, status: int, *, now: float) -> bool:
    """The receiver took it (2xx)."""
    values = {"status": "delivered", "last_status": status, "delivered_at": now, "updated_at": now}
    return _settle(engine, item, {**values, "last_error": None})


def mark_retry(
    engine: sa.Engine,
    item: OutboxItem,
    status: int | None,
    error: str,
    delay: float,
    *,
    now: float,
) -> bool:
    """Try again after `delay` seconds, with the same body and id."""
    values = {
        "status": "pending",
        "last_status": status,
        "last_error": error[:2000],
        "available_at": now + delay,
        "updated_at": now,
    }
    return _settle(engine, item, values)


def mark_dead(
    engine: sa.Engine, item: OutboxItem, status: int | None, error: str, *, now: float
) -> bool:
    """Give up: a dead letter, shown by `ghlsync dlq` and `status`, replayable."""
    values = {
        "status": "dead",
        "last_status": status,
        "last_error": error[:2000],
        "updated_at": now,
    }
    return _settle(engine, item, values)


def replay(engine: sa.Engine, writeback_id: str, *, now: float) -> bool:
    """Send a dead (or skipped) write-back again: pending, attempts reset, same id and body."""
    with begin_immediate(engine) as conn:
        done = conn.execute(
            sa.update(writeback_outbox)
            .where(o.id == writeback_id, o.status.in_(("dead", "skipped")))
            .values(status="pending", attempts=0, available_at=now, replayed_at=now, updated_at=now)
        )
        return done.rowcount == 1


def body_of(raw: str) -> dict[str, Any]:
    """A stored body as JSON (for `dlq show` and tests)."""
    loaded = json.loads(raw)
    return loaded if isinstance(loaded, dict) else {}
