"""The durable inbox: `accept` records a delivery once and folds it into its entity's work row.

The receiver calls `accept` inside its own transaction and answers 2xx only after the commit,
so an acknowledged delivery is never lost. Use `begin_immediate` for that transaction: on
SQLite it makes the receiver the single writer up front (the first statement here is a write
anyway); on PostgreSQL the work row is locked with `FOR UPDATE` before it is merged, so
concurrent receivers of one entity serialise on that row and never lose each other's fields.
On PostgreSQL `accept` also queues a `NOTIFY ghlsync_work` (once per location per
transaction), delivered at the commit, which wakes idle workers in every process (`_notify`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync.engine.queue._codec import dump_events, dumps, load_events, loads
from ghlsync.engine.queue._merge import EntityState, Incoming, event_rank, first_state, merge
from ghlsync.engine.queue._notify import notify_work
from ghlsync.store._tables_engine import inbox, work_items

__all__ = ["ACCEPTED_FLAG", "Delivery", "accept", "delivery_key"]

ACCEPTED_FLAG = "ghlsync.engine.accepted"
"""Set in the connection's `info` by `accept`; a `Worker` sharing the engine wakes on it."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One inbound event, already verified, parsed and keyed by the receiver.

    `payload` has its keys folded (`fold_keys`); `delivery_id` is the sender's id (the
    `delivery_id` field or `webhook-id` header) when it gave one; `action` is the configured
    action of the event (`upsert`, `complete`, `cancel`, `delete`) when the receiver knows it,
    used to merge events (see `ghlsync.engine.queue._merge`); without it the event name's verb
    is used.
    """

    connection_id: str
    location_id: str
    event: str
    delivery_id: str | None
    payload: Mapping[str, Any]
    entity_type: str
    source_id: str
    source_updated_at: float | None
    received_at: float
    action: str | None = field(default=None)


MAX_PLAIN_ID = 150  # "id:" + 150 characters fits inbox.delivery_key (160)


def delivery_key(delivery: Delivery) -> str:
    """The dedupe key: the sender's delivery id, else a hash of the event and canonical body.

    An id too long for the column is hashed whole (`idsha256:<hex>`), never cut: two ids
    that share their first 150 characters are two deliveries. Shorter ids keep their
    `id:<id>` key, so retries of deliveries stored before this rule still deduplicate.
    """
    if delivery.delivery_id:
        if len(delivery.delivery_id) <= MAX_PLAIN_ID:
            return "id:" + delivery.delivery_id
        digest = hashlib.sha256(delivery.delivery_id.encode("utf-8", "surrogatepass"))
        return "idsha256:" + digest.hexdigest()
    canonical = json.dumps(
        [delivery.event, delivery.payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def accept(conn: sa.Connection, delivery: Delivery) -> bool:
    """Record `delivery` in the caller's transaction; False (and no change) for a duplicate."""
    sql = _statements(conn.dialect.name)
    inbox_id = conn.execute(sql.insert_inbox, _inbox_row(delivery)).scalar()
    if inbox_id is None:
        return False
    work_id = _upsert_work(conn, sql, delivery)
    conn.execute(sql.link_inbox, {"b_id": inbox_id, "b_work": work_id})
    conn.info[ACCEPTED_FLAG] = True  # an in-process worker wakes when this connection is done
    notify_work(conn, delivery.location_id)  # PostgreSQL: workers anywhere wake at the commit
    return True


w = work_items.c


@dataclass(frozen=True, slots=True)
class _Statements:
    """Statements built once per dialect: accept runs thousands of times a second, and
    building SQLAlchemy constructs per call would cost more than executing them."""

    insert_inbox: Any
    link_inbox: Any
    insert_work: Any
    lock_work: Any
    merge_work: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return _Statements(
        insert_inbox=insert(inbox)
        .on_conflict_do_nothing(index_elements=["connection_id", "delivery_key"])
        .returning(inbox.c.id),
        link_inbox=sa.update(inbox)
        .where(inbox.c.id == sa.bindparam("b_id"))
        .values(work_id=sa.bindparam("b_work")),
        insert_work=insert(work_items)
        .on_conflict_do_nothing(index_elements=["location_id", "entity_type", "source_id"])
        .returning(w.id),
        lock_work=sa.select(
            w.id, w.status, w.event, w.events, w.payload, w.stamps, w.source_updated_at
        )
        .where(
            w.location_id == sa.bindparam("b_location"),
            w.entity_type == sa.bindparam("b_type"),
            w.source_id == sa.bindparam("b_source"),
        )
        .with_for_update(),
        merge_work=sa.update(work_items)
        .where(w.id == sa.bindparam("b_id"))
        .values(
            generation=w.generation + 1,
            # A leased row stays leased: its worker sees the new generation when it completes
            # and hands the row back, so one entity never runs in two workers at once.
            status=sa.case((w.status == "leased", "leased"), else_="pending"),
            # A settled row (done or dead) starts a new round with its attempts afresh.
            attempts=sa.case((w.status.in_(("done", "dead")), 0), else_=w.attempts),
            available_at=sa.bindparam("b_now"),
            updated_at=sa.bindparam("b_now"),
            event=sa.bindparam("b_event"),
            events=sa.bindparam("b_events"),
            payload=sa.bindparam("b_payload"),
            stamps=sa.bindparam("b_stamps"),
            source_updated_at=sa.bindparam("b_updated_at"),
        ),
    )


def _inbox_row(delivery: Delivery) -> dict[str, Any]:
    return {
        "connection_id": delivery.connection_id,
        "delivery_key": delivery_key(delivery),
        "location_id": delivery.location_id,
        "event": delivery.event,
        "entity_type": delivery.entity_type,
        "source_id": delivery.source_id,
        "payload": dumps(delivery.payload),
        "source_updated_at": delivery.source_updated_at,
        "received_at": delivery.received_at,
    }


def _incoming(delivery: Delivery) -> Incoming:
    return Incoming(
        event=delivery.event,
        rank=event_rank(delivery.event, delivery.action),
        payload=delivery.payload,
        source_updated_at=delivery.source_updated_at,
    )


def _upsert_work(conn: sa.Connection, sql: _Statements, delivery: Delivery) -> int:
    """Create the entity's work row, or lock it and merge the delivery into it."""
    incoming = _incoming(delivery)
    state = first_state(incoming)
    now = delivery.received_at
    row = {
        "location_id": delivery.location_id,
        "entity_type": delivery.entity_type,
        "source_id": delivery.source_id,
        "status": "pending",
        "generation": 1,
        "available_at": now,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "event": state.event,
        "events": dump_events(state.events),
        "payload": dumps(state.payload),
        "stamps": dumps(state.stamps),
        "source_updated_at": state.source_updated_at,
    }
    created = conn.execute(sql.insert_work, row).scalar()
    if created is not None:
        return int(created)
    return _merge_into_existing(conn, sql, delivery, incoming)


def _merge_into_existing(
    conn: sa.Connection, sql: _Statements, delivery: Delivery, incoming: Incoming
) -> int:
    key = {
        "b_location": delivery.location_id,
        "b_type": delivery.entity_type,
        "b_source": delivery.source_id,
    }
    row = conn.execute(sql.lock_work, key).one()
    current = EntityState(
        load_events(row.events, row.event),
        loads(row.payload),
        row.source_updated_at,
        loads(row.stamps),
    )
    merged = merge(current, incoming, settled=row.status in ("done", "dead"))
    conn.execute(
        sql.merge_work,
        {
            "b_id": row.id,
            "b_now": delivery.received_at,
            "b_event": merged.event,
            "b_events": dump_events(merged.events),
            "b_payload": dumps(merged.payload),
            "b_stamps": dumps(merged.stamps),
            "b_updated_at": merged.source_updated_at,
        },
    )
    return int(row.id)
