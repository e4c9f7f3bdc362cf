"""The durable inbox: `accept` records a delivery once and folds it into its entity's work row.

The receiver calls `accept` inside its own transaction and answers 2xx only after the commit,
so an acknowledged delivery is never lost. Use `begin_immediate` for that transaction: on
SQLite it makes the receiver the single writer up front (the first statement here is a write
anyway); on PostgreSQL the work row is locked with `FOR UPDATE` before it is merged, so
concurrent receivers of one entity serialise on that row and never lose each other's fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync.engine._codec import dump_events, dumps, load_events, loads
from ghlsync.engine._merge import EntityState, Incoming, event_rank, first_state, merge
from ghlsync.store._tables_engine import inbox, work_items

__all__ = ["Delivery", "accept", "delivery_key"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One inbound event, already verified, parsed and keyed by the receiver.

    `payload` has its keys folded (`fold_keys`); `delivery_id` is the sender's id (the
    `delivery_id` field or `webhook-id` header) when it gave one; `action` is the configured
    action of the event (`upsert`, `complete`, `cancel`, `delete`) when the receiver knows it,
    used to merge events (see `ghlsync.engine._merge`); without it the event name's verb is used.
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


def delivery_key(delivery: Delivery) -> str:
    """The dedupe key: the sender's delivery id, else a hash of the event and canonical body."""
    if delivery.delivery_id:
        return "id:" + delivery.delivery_id[:150]
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
    inbox_id = _insert_inbox(conn, delivery)
    if inbox_id is None:
        return False
    work_id = _upsert_work(conn, delivery)
    conn.execute(sa.update(inbox).where(inbox.c.id == inbox_id).values(work_id=work_id))
    return True


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """A dialect INSERT that supports ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _insert_inbox(conn: sa.Connection, delivery: Delivery) -> int | None:
    stmt = (
        _insert(conn, inbox)
        .values(
            connection_id=delivery.connection_id,
            delivery_key=delivery_key(delivery),
            location_id=delivery.location_id,
            event=delivery.event,
            entity_type=delivery.entity_type,
            source_id=delivery.source_id,
            payload=dumps(delivery.payload),
            source_updated_at=delivery.source_updated_at,
            received_at=delivery.received_at,
        )
        .on_conflict_do_nothing(index_elements=["connection_id", "delivery_key"])
        .returning(inbox.c.id)
    )
    inserted: int | None = conn.execute(stmt).scalar()
    return inserted


def _incoming(delivery: Delivery) -> Incoming:
    return Incoming(
        event=delivery.event,
        rank=event_rank(delivery.event, delivery.action),
        payload=delivery.payload,
        source_updated_at=delivery.source_updated_at,
    )


def _upsert_work(conn: sa.Connection, delivery: Delivery) -> int:
    """Create the entity's work row, or lock it and merge the delivery into it."""
    incoming = _incoming(delivery)
    state = first_state(incoming)
    now = delivery.received_at
    created = conn.execute(
        _insert(conn, work_items)
        .values(
            location_id=delivery.location_id,
            entity_type=delivery.entity_type,
            source_id=delivery.source_id,
            status="pending",
            generation=1,
            available_at=now,
            attempts=0,
            created_at=now,
            updated_at=now,
            **_state_values(state),
        )
        .on_conflict_do_nothing(index_elements=["location_id", "entity_type", "source_id"])
        .returning(work_items.c.id)
    ).scalar()
    if created is not None:
        return int(created)
    return _merge_into_existing(conn, delivery, incoming)


def _merge_into_existing(conn: sa.Connection, delivery: Delivery, incoming: Incoming) -> int:
    w = work_items.c
    row = conn.execute(
        sa.select(w.id, w.status, w.event, w.events, w.payload, w.stamps, w.source_updated_at)
        .where(
            w.location_id == delivery.location_id,
            w.entity_type == delivery.entity_type,
            w.source_id == delivery.source_id,
        )
        .with_for_update()
    ).one()
    current = EntityState(
        load_events(row.events, row.event),
        loads(row.payload),
        row.source_updated_at,
        loads(row.stamps),
    )
    settled = row.status in ("done", "dead")
    merged = merge(current, incoming, settled=settled)
    conn.execute(
        sa.update(work_items)
        .where(w.id == row.id)
        .values(
            generation=w.generation + 1,
            # A leased row stays leased: its worker sees the new generation when it completes
            # and hands the row back, so one entity never runs in two workers at once.
            status=sa.case((w.status == "leased", "leased"), else_="pending"),
            available_at=delivery.received_at,
            attempts=0 if settled else w.attempts,
            updated_at=delivery.received_at,
            **_state_values(merged),
        )
    )
    return int(row.id)


def _state_values(state: EntityState) -> dict[str, Any]:
    return {
        "event": state.event,
        "events": dump_events(state.events),
        "payload": dumps(state.payload),
        "stamps": dumps(state.stamps),
        "source_updated_at": state.source_updated_at,
    }
