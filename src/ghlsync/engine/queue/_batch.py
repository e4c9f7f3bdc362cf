"""`accept_many`: `accept` for a batch of deliveries in a few statements instead of 3-5 each.

The receiver's group commit (`server/_commit.py`) puts every delivery that arrived while the
last transaction was being written into the next one. Accepting them one by one costs three
statements per new entity and five per merge (insert inbox, insert work, link; or lock,
update); on PostgreSQL each is a round trip. Here the whole batch takes:

1. one multi-row `INSERT INTO inbox … ON CONFLICT DO NOTHING RETURNING` (the dedupe);
2. one multi-row `INSERT INTO work_items … ON CONFLICT DO NOTHING RETURNING` for the entities
   the batch names, each row already holding all of the batch's deliveries to it merged;
3. for the entities that already had a row: one `SELECT … FOR UPDATE` of all of them (in
   entity order), the merge in Python, one executemany `UPDATE`;
4. one executemany `UPDATE inbox SET work_id`.

The result is the same as calling `accept` for each delivery in order: the same answers
(a delivery key seen earlier, in the store or in the batch, is False), the same inbox rows,
the same work rows (merged in arrival order, `generation` raised once per delivery, a settled
row starting a new round at its first delivery). Multi-row statements go through SQLAlchemy's
"insertmanyvalues" (one statement per up to 1,000 rows on SQLite and psycopg).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ghlsync.engine.queue._codec import dump_events, dumps, load_events, loads
from ghlsync.engine.queue._inbox import (
    ACCEPTED_FLAG,
    Delivery,
    _incoming,
    delivery_key,
)
from ghlsync.engine.queue._merge import EntityState, Incoming, first_state, merge
from ghlsync.engine.queue._notify import notify_work
from ghlsync.store._tables_engine import inbox, work_items

__all__ = ["accept_many"]

EntityKey = tuple[str, str, str]  # location_id, entity_type, source_id
w = work_items.c


@dataclass(slots=True)
class _Entity:
    """The batch's fresh deliveries to one entity, in arrival order, and their inbox ids."""

    key: EntityKey
    deliveries: list[Delivery]
    incomings: list[Incoming]
    inbox_ids: list[int]


def accept_many(conn: sa.Connection, deliveries: Sequence[Delivery]) -> list[bool]:
    """`accept` for each delivery in order, in the caller's transaction; one answer each."""
    if not deliveries:
        return []
    sql = _statements(conn.dialect.name)
    answers, entities = _insert_inbox(conn, sql, deliveries)
    if not entities:
        return answers
    work_ids = _insert_work(conn, sql, entities)
    existing = [entity for entity in entities.values() if entity.key not in work_ids]
    if existing:
        work_ids.update(_merge_existing(conn, sql, existing))
    links = [
        {"b_id": inbox_id, "b_work": work_ids[entity.key]}
        for entity in entities.values()
        for inbox_id in entity.inbox_ids
    ]
    conn.execute(sql.link_inbox, links)
    conn.info[ACCEPTED_FLAG] = True
    for location in dict.fromkeys(key[0] for key in entities):
        notify_work(conn, location)
    return answers


@dataclass(frozen=True, slots=True)
class _Statements:
    insert_inbox: Any
    insert_work: Any
    lock_work: Any
    merge_work: Any
    link_inbox: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    entity = sa.tuple_(w.location_id, w.entity_type, w.source_id)
    return _Statements(
        insert_inbox=insert(inbox)
        .on_conflict_do_nothing(index_elements=["connection_id", "delivery_key"])
        .returning(inbox.c.id, inbox.c.connection_id, inbox.c.delivery_key),
        insert_work=insert(work_items)
        .on_conflict_do_nothing(index_elements=["location_id", "entity_type", "source_id"])
        .returning(w.id, w.location_id, w.entity_type, w.source_id),
        lock_work=sa.select(
            w.id,
            w.location_id,
            w.entity_type,
            w.source_id,
            w.status,
            w.event,
            w.events,
            w.payload,
            w.stamps,
            w.source_updated_at,
        )
        .where(entity.in_(sa.bindparam("b_keys", expanding=True)))
        # Rows are locked in the order they are returned: entity order, as the batch is sorted,
        # so concurrent batches (PostgreSQL's several writers) cannot deadlock on them.
        .order_by(w.location_id, w.entity_type, w.source_id)
        .with_for_update(),
        merge_work=sa.update(work_items)
        .where(w.id == sa.bindparam("b_id"))
        .values(
            generation=w.generation + sa.bindparam("b_count"),
            # As in `accept`: a leased row stays leased; a settled one starts a new round.
            status=sa.case((w.status == "leased", "leased"), else_="pending"),
            # (two comparisons, not IN: an IN list is expanded per call, which executemany
            # cannot do)
            attempts=sa.case((sa.or_(w.status == "done", w.status == "dead"), 0), else_=w.attempts),
            available_at=sa.bindparam("b_now"),
            updated_at=sa.bindparam("b_now"),
            event=sa.bindparam("b_event"),
            events=sa.bindparam("b_events"),
            payload=sa.bindparam("b_payload"),
            stamps=sa.bindparam("b_stamps"),
            source_updated_at=sa.bindparam("b_updated_at"),
        ),
        link_inbox=sa.update(inbox)
        .where(inbox.c.id == sa.bindparam("b_id"))
        .values(work_id=sa.bindparam("b_work")),
    )


def _insert_inbox(
    conn: sa.Connection, sql: _Statements, deliveries: Sequence[Delivery]
) -> tuple[list[bool], dict[EntityKey, _Entity]]:
    """Insert the batch's inbox rows; the answers, and the fresh deliveries by entity."""
    keys = [(d.connection_id, delivery_key(d)) for d in deliveries]
    first: dict[tuple[str, str], int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)  # a key twice in one batch: the later ones are duplicates
    rows = [_inbox_row(deliveries[index], key[1]) for key, index in first.items()]
    stored = {(r.connection_id, r.delivery_key): r.id for r in conn.execute(sql.insert_inbox, rows)}
    answers = [False] * len(deliveries)
    entities: dict[EntityKey, _Entity] = {}
    for key, index in first.items():
        inbox_id = stored.get(key)
        if inbox_id is None:
            continue  # stored before this batch
        answers[index] = True
        d = deliveries[index]
        entity_key = (d.location_id, d.entity_type, d.source_id)
        entity = entities.get(entity_key)
        if entity is None:
            entity = entities[entity_key] = _Entity(entity_key, [], [], [])
        entity.deliveries.append(d)
        entity.incomings.append(_incoming(d))
        entity.inbox_ids.append(int(inbox_id))
    return answers, entities


def _inbox_row(delivery: Delivery, key: str) -> dict[str, Any]:
    return {
        "connection_id": delivery.connection_id,
        "delivery_key": key,
        "location_id": delivery.location_id,
        "event": delivery.event,
        "entity_type": delivery.entity_type,
        "source_id": delivery.source_id,
        "payload": dumps(delivery.payload),
        "source_updated_at": delivery.source_updated_at,
        "received_at": delivery.received_at,
    }


def _insert_work(
    conn: sa.Connection, sql: _Statements, entities: dict[EntityKey, _Entity]
) -> dict[EntityKey, int]:
    """Create the rows of entities seen for the first time; their ids by entity."""
    rows = [_new_row(entity) for entity in entities.values()]
    created = conn.execute(sql.insert_work, rows)
    return {(r.location_id, r.entity_type, r.source_id): int(r.id) for r in created}


def _new_row(entity: _Entity) -> dict[str, Any]:
    """The work row `accept` would leave after inserting the first delivery and merging the
    others into it (a fresh row is pending, never settled)."""
    state = first_state(entity.incomings[0])
    for incoming in entity.incomings[1:]:
        state = merge(state, incoming, settled=False)
    location, entity_type, source_id = entity.key
    first, last = entity.deliveries[0], entity.deliveries[-1]
    return {
        "location_id": location,
        "entity_type": entity_type,
        "source_id": source_id,
        "status": "pending",
        "generation": len(entity.deliveries),
        "available_at": last.received_at,
        "attempts": 0,
        "created_at": first.received_at,
        "updated_at": last.received_at,
        "event": state.event,
        "events": dump_events(state.events),
        "payload": dumps(state.payload),
        "stamps": dumps(state.stamps),
        "source_updated_at": state.source_updated_at,
    }


def _merge_existing(
    conn: sa.Connection, sql: _Statements, entities: list[_Entity]
) -> dict[EntityKey, int]:
    """Lock the existing rows of `entities`, merge each one's deliveries in, write them back."""
    by_key = {entity.key: entity for entity in entities}
    rows = conn.execute(sql.lock_work, {"b_keys": sorted(by_key)}).all()
    updates, ids = [], {}
    for row in rows:
        key = (row.location_id, row.entity_type, row.source_id)
        entity = by_key[key]
        ids[key] = int(row.id)
        state = EntityState(
            load_events(row.events, row.event),
            loads(row.payload),
            row.source_updated_at,
            loads(row.stamps),
        )
        settled = row.status in ("done", "dead")
        for incoming in entity.incomings:
            state = merge(state, incoming, settled=settled)
            settled = False  # after its first delivery the row is pending (or still leased)
        updates.append(
            {
                "b_id": row.id,
                "b_count": len(entity.deliveries),
                "b_now": entity.deliveries[-1].received_at,
                "b_event": state.event,
                "b_events": dump_events(state.events),
                "b_payload": dumps(state.payload),
                "b_stamps": dumps(state.stamps),
                "b_updated_at": state.source_updated_at,
            }
        )
    if len(ids) != len(by_key):
        raise RuntimeError("a work row vanished while its deliveries were being accepted")
    conn.execute(sql.merge_work, updates)
    return ids
