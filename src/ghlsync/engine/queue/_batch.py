"""`accept_many`: `accept` for a batch of deliveries in a few statements instead of 3-5 each.

The receiver's group commit (`server/_commit.py`) puts every delivery that arrived while the
last transaction was being written into the next one. Accepting them one by one costs three
statements per new entity and five per merge (insert inbox, insert work, link; or lock,
update); on PostgreSQL each is a round trip. Here the whole batch takes:

1. one multi-row `INSERT INTO inbox … ON CONFLICT DO NOTHING RETURNING` (the dedupe);
2. one multi-row `INSERT INTO work_items … ON CONFLICT DO NOTHING RETURNING` for the entities
   the batch names that are not known to have a row (`_KNOWN`), each row already holding all
   of the batch's deliveries to it merged;
3. one `SELECT … FOR UPDATE` of the rows of the other entities, in entity order: the rows to
   merge into. When every entity of the batch is known, it is sent with step 1 and step 2
   is skipped; when some are, it is sent right after step 2 and locks all of the batch's
   entities; when none are, it locks the rows whose insert conflicted, after step 2;
4. the merges, done in Python (`_hot`: without decoding the rows this process wrote
   last, nor encoding a delivery that replaces every field or, older, takes none), written
   back: on PostgreSQL one `UPDATE … FROM unnest` for all of them, on SQLite one
   executemany `UPDATE`;
5. one executemany `UPDATE inbox SET work_id` on SQLite. PostgreSQL writes `work_id` with the
   inbox insert instead (`_Inbox`): the id the connection last saw for a known entity, a
   new id drawn from the work rows' sequence in the same statement for the others (the work
   insert then uses it). Only an inbox row whose entity ended up with another row (its
   insert conflicted, a remembered row is gone) is linked afterwards, by one `UPDATE … FROM
   unnest`. That statement ran for every batch before and, prepared while the inbox was
   still nearly empty, kept a plan that read the whole inbox each time (a hash join over a
   sequential scan, until the next ANALYZE): the inbox's size in tuples read per batch.
   (SQLite writing the known ids with its insert as well measured no faster: its inserts
   then land at as many places of the `work_id` index as the batch has entities.)

On PostgreSQL the multi-row statements take one array per column instead of a VALUES list,
and the group commit runs them in a psycopg pipeline (`server/_commit.py`), where a
statement's result is waited for only when it is needed: a batch of known entities (the
merge-heavy case) waits twice (steps 1 and 3 together, then the commit, which takes the
updates and the NOTIFY with it), a batch of new ones three times.

Writers cannot deadlock on work rows: each one takes its row locks in one pass, in entity
order (step 3), after any insert of its own (step 2, also in entity order). Only a known
entity found without a row (a store restored under a running receiver) is inserted after
the locks; should that close a cycle, PostgreSQL aborts one transaction and the receiver
retries its batch one delivery per transaction (`accept`): nothing is lost or doubled.

The result is the same as calling `accept` for each delivery in order: the same answers
(a delivery key seen earlier, in the store or in the batch, is False), the same inbox rows,
the same work rows (merged in arrival order, `generation` raised once per delivery, a settled
row starting a new round at its first delivery). The statements are written for the driver
(sqlite3 or psycopg) and run on its cursor inside the caller's transaction: for these
plain-typed columns SQLAlchemy's per-statement machinery cost more than the statements.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.queue._codec import dumps
from ghlsync.engine.queue._hot import (
    HOT_ROWS,
    HotRows,
    events_json,
    events_of,
    merge_into,
    stamps_json,
)
from ghlsync.engine.queue._inbox import (
    ACCEPTED_FLAG,
    Delivery,
    _incoming,
    delivery_key,
)
from ghlsync.engine.queue._merge import EntityState, Incoming, first_state, merge
from ghlsync.engine.queue._notify import notify_work

__all__ = ["accept_many"]

EntityKey = tuple[str, str, str]  # location_id, entity_type, source_id
# A work row as `_Sql.lock_work` reads it: id, location_id, entity_type, source_id, status,
# event, events, payload, stamps, source_updated_at.
_Row = tuple[Any, ...]


@dataclass(slots=True)
class _Entity:
    """The batch's fresh deliveries to one entity, in arrival order, and their inbox ids."""

    key: EntityKey
    deliveries: list[Delivery]
    incomings: list[Incoming]
    inbox_ids: list[int]
    payload_jsons: list[str]  # the deliveries' payloads as stored in the inbox
    # The work id each inbox row was inserted with (PostgreSQL; None: not linked yet).
    linked: list[int | None] = field(default_factory=list)
    drawn: int | None = None  # PostgreSQL: the id drawn for its new row by the inbox insert


def accept_many(conn: sa.Connection, deliveries: Sequence[Delivery]) -> list[bool]:
    """`accept` for each delivery in order, in the caller's transaction; one answer each."""
    if not deliveries:
        return []
    sql = _Sql.of(conn.dialect.name)
    known: dict[EntityKey, int] = conn.info.setdefault(_KNOWN, {})
    # Driver-level statements: SQLAlchemy's per-statement work (contexts, result wrappers,
    # parameter processing) cost more than SQLite's own for these plain-typed columns.
    dbapi: Any = conn.connection.dbapi_connection
    cursor, rows_cursor = dbapi.cursor(), dbapi.cursor()  # two results in one round trip
    try:
        inbox = _Inbox(deliveries, known if sql.arrays else None)
        cursor.execute(sql.insert_inbox(len(inbox.rows)), inbox.params(sql))
        keys = inbox.entity_keys
        early = all(key in known for key in keys)
        if early:  # every entity has a row: lock them all with the inbox insert
            sql.join(rows_cursor, sql.lock_work(len(keys)), keys)
        answers, entities = inbox.fresh(cursor.fetchall())
        rows = _by_key(rows_cursor.fetchall()) if early else None
        if entities:
            _learn(known, _write_work(cursor, rows_cursor, sql, entities, rows, known))
            for location in dict.fromkeys(key[0] for key in entities):
                notify_work(conn, location, cursor)
    finally:
        rows_cursor.close()
        cursor.close()
    if entities:
        conn.info[ACCEPTED_FLAG] = True
    return answers


_KNOWN = "ghlsync.engine.known_entities"
"""In a connection's `info`: entities it has seen a work row of, with that row's id. Work rows
are never deleted, so these most likely still have that row; a wrong guess costs statements
(and its rare late lock may deadlock, see the module doc), never a wrong result. Code that
ever deletes work rows should clear this dict on the connections it can."""
_KNOWN_MAX = 10_000


def _learn(known: dict[EntityKey, int], work_ids: dict[EntityKey, int]) -> None:
    if len(known) + len(work_ids) > _KNOWN_MAX:
        known.clear()  # relearnt at one extra statement per batch: simpler than an LRU
    known.update(work_ids)


def _write_work(
    cursor: Any,
    rows_cursor: Any,
    sql: _Sql,
    entities: dict[EntityKey, _Entity],
    rows: dict[EntityKey, _Row] | None,
    known: dict[EntityKey, int],
) -> dict[EntityKey, int]:
    """Create or merge the entities' work rows, then link the inbox rows not yet linked to
    them (all of them on SQLite); the entities' work ids.

    `rows`: the existing rows, locked, when read with the inbox insert; else read here.
    """
    if rows is None:
        rows, inserted = _insert_or_lock(cursor, rows_cursor, sql, entities, known)
    else:  # an entity known to have a row had none (a store restored meanwhile)
        unknown = {key: entity for key, entity in entities.items() if key not in rows}
        inserted = _insert_work(cursor, sql, unknown) if unknown else {}
    missed = sorted(key for key in entities if key not in rows and key not in inserted)
    if missed:  # its insert conflicted: the row existed, or another writer created it
        rows = {**rows, **_lock_rows(cursor, sql, missed)}
    merges = {key: _merged(rows[key], e) for key, e in entities.items() if key not in inserted}
    if merges:
        _update_work(cursor, sql, list(merges.values()))
    work_ids = {key: int(rows[key][0]) for key in merges} | inserted
    _link(cursor, sql, entities, work_ids)
    return work_ids


def _link(
    cursor: Any, sql: _Sql, entities: dict[EntityKey, _Entity], work_ids: dict[EntityKey, int]
) -> None:
    """Point the inbox rows at their entity's work row where the insert did not already."""
    links = [
        (work_ids[entity.key], inbox_id)
        for entity in entities.values()
        for inbox_id, linked in zip(entity.inbox_ids, entity.linked, strict=True)
        if linked != work_ids[entity.key]
    ]
    if not links:
        return
    if sql.arrays:
        sql.join(cursor, sql.link_inbox, links)
    else:
        cursor.executemany(sql.link_inbox, links)


def _insert_or_lock(
    cursor: Any,
    rows_cursor: Any,
    sql: _Sql,
    entities: dict[EntityKey, _Entity],
    known: dict[EntityKey, int],
) -> tuple[dict[EntityKey, _Row], dict[EntityKey, int]]:
    """Insert the rows of the entities not known; when some are known, lock the rows of all
    of them in the same round trip, after the insert. The locked rows, the inserted ids."""
    new = {key: entity for key, entity in entities.items() if key not in known}
    if new:
        _send_insert(cursor, sql, new)
    lock = len(new) < len(entities)
    if lock:  # all of them, in entity order: the batch's only lock pass (see module doc)
        keys = sorted(entities)
        sql.join(rows_cursor, sql.lock_work(len(keys)), keys)
    inserted = _inserted(cursor.fetchall()) if new else {}
    return (_by_key(rows_cursor.fetchall()) if lock else {}), inserted


# PostgreSQL takes each batch as one array per column (`unnest`): the statement text stays
# the same whatever the batch size, so psycopg parses it once and can prepare it, where a
# multi-row VALUES list of 9-14 placeholders a row was parsed again for every batch (its
# regex pass cost about as much as the rest of the writer's work).
_INBOX_TYPES = "text, text, text, text, text, text, text, float8, float8"
_WORK_TYPES = (
    "text, text, text, text, int4, float8, int4, float8, float8, text, text, text, text, float8"
)
_INBOX_COLUMNS = (
    "connection_id, delivery_key, location_id, event, entity_type, source_id, payload, "
    "source_updated_at, received_at"
)
_WORK_COLUMNS = (
    "location_id, entity_type, source_id, status, generation, available_at, attempts, "
    "created_at, updated_at, event, events, payload, stamps, source_updated_at"
)


# As in `accept`: a leased row stays leased (its worker sees the new generation when it
# completes); a settled one (done or dead) starts a new round with its attempts afresh.
_MERGE_SET = (
    "UPDATE work_items SET generation = work_items.generation + {n}, "
    "status = CASE WHEN work_items.status = 'leased' THEN 'leased' ELSE 'pending' END, "
    "attempts = CASE WHEN work_items.status IN ('done', 'dead') THEN 0 "
    "ELSE work_items.attempts END, "
    "available_at = {now}, updated_at = {now}, event = {event}, events = {events}, "
    "payload = {payload}, stamps = {stamps}, source_updated_at = {at} "
)
_MERGE_ONE = (
    _MERGE_SET.format(  # SQLite: one row per execution, a tuple of `_merged`
        n="?1", now="?2", event="?3", events="?4", payload="?5", stamps="?6", at="?7"
    )
    + "WHERE id = ?8"
)
_MERGE_ARRAYS = _MERGE_SET.format(  # PostgreSQL: all rows, one array per field of `_merged`
    n="merged.n",
    now="merged.now",
    event="merged.event",
    events="merged.events",
    payload="merged.payload",
    stamps="merged.stamps",
    at="merged.at",
) + (
    "FROM unnest(%b::int4[], %b::float8[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::float8[], %b::int8[]) AS merged(n, now, event, events, payload, stamps, at, id) "
    "WHERE work_items.id = merged.id"
)


@dataclass(frozen=True, slots=True)
class _Sql:
    """The batch's SQL for one dialect; multi-row statements are built per row count."""

    dialect: str
    mark: str  # the driver's placeholder: ? (sqlite3) or %s (psycopg)
    merge_work: str
    link_inbox: str

    @property
    def arrays(self) -> bool:
        """Multi-row statements take one array per column (PostgreSQL), not a VALUES list."""
        return self.dialect == "postgresql"

    @staticmethod
    @functools.cache
    def of(dialect: str) -> _Sql:
        mark = "%s" if dialect == "postgresql" else "?"
        merge_work, link = _MERGE_ONE, "UPDATE inbox SET work_id = ? WHERE id = ?"
        if dialect == "postgresql":  # one statement for the batch: the rows as arrays
            merge_work = _MERGE_ARRAYS
            link = (
                "UPDATE inbox SET work_id = link.work_id "
                "FROM unnest(%b::int8[], %b::int8[]) AS link(work_id, inbox_id) "
                "WHERE inbox.id = link.inbox_id"
            )
        return _Sql(dialect, mark, merge_work.replace("?", mark), link.replace("?", mark))

    def join(self, cursor: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
        """Run a statement that finds existing rows by the batch's keys, planned for these
        rows (PostgreSQL: never prepared).

        A prepared statement soon runs a generic plan, made once for any array: PostgreSQL
        guesses 10-100 keys and, while the table is small (a new store, the first minutes of
        a backlog), picks a hash join over a sequential scan, and keeps that plan as the
        table grows until the next ANALYZE. A custom plan knows the batch's size and the
        table's: index lookups once it holds more than a few pages. (The work rows of a
        mixed stream on a new store were read whole about once per batch.)
        """
        if self.arrays:
            cursor.execute(statement, self.params(rows), prepare=False)
        else:
            cursor.execute(statement, self.params(rows))

    def params(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """A multi-row statement's parameters: the rows' columns, or their values in order."""
        if self.arrays:
            return [_array(column) for column in zip(*rows, strict=True)]
        return [value for row in rows for value in row]

    def insert_inbox(self, rows: int) -> str:
        if self.arrays:
            return _PG_INSERT_INBOX
        return _insert_sql(
            "inbox",
            _INBOX_COLUMNS,
            9,
            rows,
            self.mark,
            "connection_id, delivery_key",
            "id, connection_id, delivery_key",
        )

    def insert_work(self, rows: int) -> str:
        if self.arrays:
            return _PG_INSERT_WORK
        return _insert_sql(
            "work_items",
            _WORK_COLUMNS,
            14,
            rows,
            self.mark,
            "location_id, entity_type, source_id",
            "id, location_id, entity_type, source_id",
        )

    def lock_work(self, rows: int) -> str:
        return _lock_sql(self.dialect, self.mark, 0 if self.arrays else rows)


def _array(values: tuple[Any, ...]) -> list[Any]:
    """One column as a list psycopg can send: it refuses a list mixing int and float, and a
    timestamp column can hold both (a delivery's `updated_at` of 5 beside 5.5)."""
    if any(type(value) is float for value in values):
        return [value if value is None else float(value) for value in values]
    return list(values)


@functools.lru_cache(maxsize=256)
def _insert_sql(
    table: str, columns: str, width: int, rows: int, mark: str, unique: str, returning: str
) -> str:
    row = "(" + ", ".join([mark] * width) + ")"
    return (
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * rows)} "
        f"ON CONFLICT ({unique}) DO NOTHING RETURNING {returning}"
    )


def _unnest_insert_sql(
    table: str,
    columns: str,
    types: str,
    select: str,
    unique: str,
    returning: str,
    *,
    extra: str = "",
    drawn: str = "",
) -> str:
    """PostgreSQL: insert the rows given as one array per column of `types` (named by
    `columns`, then `extra`), each row as the expressions `select` of them (`batch.<name>`)
    and of `drawn` (a CTE)."""
    arrays = ", ".join(f"%b::{name}[]" for name in types.split(", "))
    names = columns + (f", {extra}" if extra else "")
    # WITH ORDINALITY and ORDER BY: rows are inserted (and their index entries locked) in the
    # arrays' order, which for work rows is entity order (see `_insert_work`).
    return (
        f"{drawn}INSERT INTO {table} ({columns}) SELECT {select} FROM unnest({arrays}) "
        f"WITH ORDINALITY AS batch({names}, n){' LEFT JOIN drawn USING (slot)' if drawn else ''} "
        f"ORDER BY batch.n ON CONFLICT ({unique}) DO NOTHING RETURNING {returning}"
    )


def _batch_columns(columns: str) -> str:
    return ", ".join(f"batch.{name}" for name in columns.split(", "))


# The inbox insert draws one new work id per entity not known to have a row (`slot` 1..n,
# the first parameter is n) and stores the drawn or the remembered id as `work_id`;
# MATERIALIZED: the sequence is called once per slot, whatever the join does.
_PG_INSERT_INBOX = _unnest_insert_sql(
    "inbox",
    _INBOX_COLUMNS + ", work_id",
    _INBOX_TYPES + ", int8, int4",
    _batch_columns(_INBOX_COLUMNS) + ", COALESCE(batch.work_id, drawn.id)",
    "connection_id, delivery_key",
    "id, connection_id, delivery_key, work_id",
    extra="slot",
    drawn=(
        "WITH drawn AS MATERIALIZED (SELECT slot, nextval('work_items_id_seq') AS id "
        "FROM generate_series(1, %s::int4) AS slot) "
    ),
)
# A new work row takes the id its inbox rows were inserted with; one without (an entity known
# to have had a row that is gone) draws its own.
_PG_INSERT_WORK = _unnest_insert_sql(
    "work_items",
    "id, " + _WORK_COLUMNS,
    "int8, " + _WORK_TYPES,
    "COALESCE(batch.id, nextval('work_items_id_seq')), " + _WORK_COLUMNS,
    "location_id, entity_type, source_id",
    "id, location_id, entity_type, source_id",
)


@functools.lru_cache(maxsize=256)
def _lock_sql(dialect: str, mark: str, rows: int) -> str:
    keys = ", ".join([f"({mark}, {mark}, {mark})"] * rows)
    if dialect == "postgresql":  # the keys as three arrays, like the inserts
        where, lock = "IN (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))", " FOR UPDATE"
    else:  # SQLite compares row values only against a VALUES list (and has no row locks)
        where, lock = f"IN (VALUES {keys})", ""
    # Rows are locked in the order they are returned: entity order, as the batch is sorted,
    # so concurrent batches (PostgreSQL's several writers) cannot deadlock on them.
    return (
        "SELECT id, location_id, entity_type, source_id, status, event, events, payload, "
        f"stamps, source_updated_at FROM work_items "
        f"WHERE (location_id, entity_type, source_id) {where} "
        f"ORDER BY location_id, entity_type, source_id{lock}"
    )


class _Inbox:
    """The batch's inbox rows (a key twice in one batch: the later ones are duplicates).

    With `known` (PostgreSQL), each row also names its work row: the remembered id of a
    known entity, else the slot (1..n, one per entity) of an id the insert draws.
    """

    def __init__(
        self, deliveries: Sequence[Delivery], known: dict[EntityKey, int] | None = None
    ) -> None:
        self.deliveries = deliveries
        self.first: dict[tuple[str, str], int] = {}
        for index, d in enumerate(deliveries):
            self.first.setdefault((d.connection_id, delivery_key(d)), index)
        self.rows = [_inbox_row(deliveries[index], key[1]) for key, index in self.first.items()]
        self.slots: dict[EntityKey, int] = {}
        if known is not None:
            self.rows = [row + self._work(row, known) for row in self.rows]

    def _work(self, row: tuple[Any, ...], known: dict[EntityKey, int]) -> tuple[Any, Any]:
        """The row's (work_id, slot): one of them None."""
        key = (row[2], row[4], row[5])
        work_id = known.get(key)
        if work_id is not None:
            return work_id, None
        return None, self.slots.setdefault(key, len(self.slots) + 1)

    def params(self, sql: _Sql) -> list[Any]:
        """The inbox insert's parameters (PostgreSQL: the ids to draw, then the arrays)."""
        if sql.arrays:
            return [len(self.slots), *sql.params(self.rows)]
        return sql.params(self.rows)

    @property
    def entity_keys(self) -> list[EntityKey]:
        """The entities the batch names, in entity order (the order rows are locked in)."""
        return sorted({(d.location_id, d.entity_type, d.source_id) for d in self.deliveries})

    def fresh(self, stored: list[tuple[Any, ...]]) -> tuple[list[bool], dict[EntityKey, _Entity]]:
        """From the insert's RETURNING: the answers, and the fresh deliveries by entity."""
        ids = {(row[1], row[2]): row for row in stored}
        answers = [False] * len(self.deliveries)
        entities: dict[EntityKey, _Entity] = {}
        for (key, index), row in zip(self.first.items(), self.rows, strict=True):
            inserted = ids.get(key)
            if inserted is None:
                continue  # stored before this batch
            inbox_id, linked = inserted[0], inserted[3] if len(inserted) > 3 else None
            answers[index] = True
            d = self.deliveries[index]
            entity_key = (d.location_id, d.entity_type, d.source_id)
            entity = entities.get(entity_key)
            if entity is None:
                entity = _Entity(entity_key, [], [], [], [])
                entities[entity_key] = entity
            entity.deliveries.append(d)
            entity.payload_jsons.append(row[6])
            entity.incomings.append(_incoming(d))
            entity.inbox_ids.append(int(inbox_id))
            entity.linked.append(linked)
            if entity_key in self.slots:
                entity.drawn = linked
        return answers, entities


def _inbox_row(delivery: Delivery, key: str) -> tuple[Any, ...]:
    return (
        delivery.connection_id,
        key,
        delivery.location_id,
        delivery.event,
        delivery.entity_type,
        delivery.source_id,
        dumps(delivery.payload),
        delivery.source_updated_at,
        delivery.received_at,
    )


def _insert_work(
    cursor: Any, sql: _Sql, entities: dict[EntityKey, _Entity]
) -> dict[EntityKey, int]:
    """Create the rows of entities seen for the first time; their ids by entity."""
    _send_insert(cursor, sql, entities)
    return _inserted(cursor.fetchall())


def _send_insert(cursor: Any, sql: _Sql, entities: dict[EntityKey, _Entity]) -> None:
    # In entity order, like the lock of existing rows: two PostgreSQL writers inserting the
    # same new entities in different orders would wait on each other's index entries.
    keys = sorted(entities)
    rows = [_new_row(entities[key]) for key in keys]
    if sql.arrays:  # with the id drawn for it, if any
        rows = [(entities[key].drawn, *row) for key, row in zip(keys, rows, strict=True)]
    cursor.execute(sql.insert_work(len(rows)), sql.params(rows))


def _inserted(returned: list[tuple[Any, ...]]) -> dict[EntityKey, int]:
    return {(loc, kind, source): int(id_) for id_, loc, kind, source in returned}


def _new_row(entity: _Entity) -> tuple[Any, ...]:
    """The work row `accept` would leave after inserting the first delivery and merging the
    others into it (a fresh row is pending, never settled)."""
    location, entity_type, source_id = entity.key
    first, last = entity.deliveries[0], entity.deliveries[-1]
    incoming = entity.incomings[0]
    state = first_state(incoming)
    if len(entity.incomings) == 1:
        # The common case, without encoding the same JSON again: the payload is the inbox's,
        # every field stamped with the delivery's timestamp.
        payload = entity.payload_jsons[0]
        stamps = stamps_json(tuple(incoming.payload), incoming.source_updated_at)
    else:
        for more in entity.incomings[1:]:
            state = merge(state, more, settled=False)
        payload, stamps = dumps(state.payload), dumps(state.stamps)
    return (  # in the order of _WORK_COLUMNS
        location,
        entity_type,
        source_id,
        "pending",
        len(entity.deliveries),
        last.received_at,
        0,
        first.received_at,
        last.received_at,
        state.event,
        events_json(state.events),
        payload,
        stamps,
        state.source_updated_at,
    )


def _by_key(rows: list[_Row]) -> dict[EntityKey, _Row]:
    """Rows of `_Sql.lock_work` by entity."""
    return {(row[1], row[2], row[3]): row for row in rows}


def _lock_rows(cursor: Any, sql: _Sql, keys: list[EntityKey]) -> dict[EntityKey, _Row]:
    """Lock and read the rows of `keys` (in entity order), which must exist."""
    sql.join(cursor, sql.lock_work(len(keys)), keys)
    rows = _by_key(cursor.fetchall())
    if len(rows) != len(keys):
        raise RuntimeError("a work row vanished while its deliveries were being accepted")
    return rows


def _merged(row: _Row, entity: _Entity, hot: HotRows = HOT_ROWS) -> tuple[Any, ...]:
    """The update of `row` with the entity's deliveries merged in, in arrival order."""
    row_id, _, _, _, status, event, events, payload, stamps, at = row
    fields = hot.fields(row_id, payload, stamps)
    state = EntityState(events_of(events, event), fields.payload, at, fields.stamps)
    incomings = zip(entity.incomings, entity.payload_jsons, strict=True)
    state, fields = merge_into(state, fields, list(incomings), settled=status in ("done", "dead"))
    hot.remember(row_id, fields)
    return (  # the parameters of _Sql.merge_work, in order
        len(entity.deliveries),
        entity.deliveries[-1].received_at,
        state.event,
        events_json(state.events),
        fields.payload_text,
        fields.stamps_text,
        state.source_updated_at,
        row_id,
    )


def _update_work(cursor: Any, sql: _Sql, merges: list[tuple[Any, ...]]) -> None:
    if sql.arrays:
        sql.join(cursor, sql.merge_work, merges)
    else:
        cursor.executemany(sql.merge_work, merges)
