"""accept_many() merging into existing rows: nothing lost or doubled, on SQLite and PostgreSQL.

`accept_many` reads and locks the rows it merges into with the inbox insert when it knows the
batch's entities have rows (a connection remembers the entities it has seen), otherwise after
inserting the new ones; it writes all merges in one statement on PostgreSQL. These tests run
it the way the receiver does (on PostgreSQL in the group commit's pipeline, with concurrent
writers) and check the rows against `accept` of each delivery in order, or against what any
order of the deliveries must leave: one row per entity, `generation` the number of its
deliveries, every field of every delivery in the payload, every inbox row linked to it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghlsync.engine import Delivery, accept, accept_many
from ghlsync.server._commit import GroupCommitter, _transaction
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import inbox, work_items
from tests._engine_kit import delivery
from tests.test_engine_queue_accept_many import (
    EVENTS,
    FIELDS,
    as_half,
    random_batch,
    settle_some,
    snapshot,
)


@pytest.mark.parametrize("seed", [4, 5, 6, 7])
def test_pipelined_batches_equal_accept_in_order(engine_store: sa.Engine, seed: int) -> None:
    """As the receiver runs it (pipelined on PostgreSQL), on one connection that remembers
    its entities: batches of known, new and mixed entities, duplicates, settled rows."""
    rng = random.Random(seed)
    sent: list[Delivery] = []
    clock = [1_700_000_000.0]
    for _ in range(12):
        batch = random_batch(rng, sent, clock)
        with begin_immediate(engine_store) as conn:
            one_by_one = [accept(conn, as_half(d, "A")) for d in batch]
        with _transaction(engine_store, pipeline=True) as conn:
            batched = accept_many(conn, [as_half(d, "B") for d in batch])
        assert batched == one_by_one
        assert snapshot(engine_store, "B") == snapshot(engine_store, "A")
        settle_some(engine_store, rng)


def test_a_batch_of_known_entities_leased_done_and_dead(engine_store: sa.Engine) -> None:
    """Every entity known: the rows are read with the inbox insert and merged in one
    statement; a leased row stays leased, settled ones start a new round (attempts reset)."""
    first = [delivery(f"c{n}", delivery_id=f"a{n}", updated_at=10.0, email="old") for n in range(4)]
    with engine_store.connect() as conn:
        with begin_immediate(conn):
            accept_many(conn, first)
        with begin_immediate(conn):
            for n, status in enumerate(["leased", "done", "dead", "pending"]):
                conn.execute(
                    sa.update(work_items)
                    .where(work_items.c.source_id == f"c{n}")
                    .values(status=status, attempts=2)
                )
        again = [
            delivery(
                f"c{n}", delivery_id=f"b{n}", updated_at=12.0, email=f"new{n}", received_at=5.0
            )
            for n in range(4)
        ] + [
            delivery(
                "c0",
                delivery_id="b-old",
                updated_at=11.0,
                email="older",
                phone="1",
                received_at=5.0,
            )
        ]
        with begin_immediate(conn):
            assert accept_many(conn, again) == [True] * 5
        rows = {r.source_id: r for r in conn.execute(sa.select(work_items)).all()}
    assert {k: (r.status, r.attempts, r.generation) for k, r in rows.items()} == {
        "c0": ("leased", 2, 3),
        "c1": ("pending", 0, 2),
        "c2": ("pending", 0, 2),
        "c3": ("pending", 2, 2),
    }
    assert rows["c0"].payload == '{"customer_id":"c0","email":"new0","phone":"1"}'
    assert rows["c0"].source_updated_at == 12.0
    assert {r.available_at for r in rows.values()} == {5.0}


def test_a_known_entity_whose_row_is_gone_is_created_again(engine_store: sa.Engine) -> None:
    """A connection remembers an entity, but its row is gone (a store restored under a
    running receiver): the batch still creates it and links its inbox rows."""
    with engine_store.connect() as conn:
        with begin_immediate(conn):
            accept_many(conn, [delivery("c1", delivery_id="a1"), delivery("c2", delivery_id="a2")])
        with begin_immediate(conn):
            conn.execute(sa.delete(inbox))
            conn.execute(sa.delete(work_items).where(work_items.c.source_id == "c1"))
        batch = [delivery("c1", delivery_id="b1", email="x"), delivery("c2", delivery_id="b2")]
        with begin_immediate(conn):
            assert accept_many(conn, batch) == [True, True]
        rows = {r.source_id: r for r in conn.execute(sa.select(work_items)).all()}
        links = conn.execute(sa.select(inbox.c.delivery_key, inbox.c.work_id)).all()
    assert (rows["c1"].generation, rows["c2"].generation) == (1, 2)
    assert rows["c1"].payload == '{"customer_id":"c1","email":"x"}'
    assert dict(links) == {"id:b1": rows["c1"].id, "id:b2": rows["c2"].id}


@pytest.mark.parametrize("knows_c1", [True, False])
@pytest.mark.postgres
def test_an_entity_created_by_another_writer_meanwhile_is_merged(
    postgres_url: str, knows_c1: bool
) -> None:
    """Two writers, one new entity: the second one's insert waits for the first's commit,
    conflicts, and merges into the row the first created, in the same transaction (whether
    its lock pass follows the insert, or only the conflicting rows are locked after it)."""
    engine_store = create_engine(postgres_url)
    migrate(engine_store)
    first = [delivery("c9", delivery_id="a", updated_at=10.0, email="a@x", phone="1")]
    second = [
        delivery("c9", delivery_id="b", updated_at=9.0, email="old@x", city="Austin"),
        delivery("c1", delivery_id="c"),
    ]
    done = threading.Event()
    with engine_store.connect() as other:
        if knows_c1:
            with begin_immediate(other):
                accept_many(other, [delivery("c1", delivery_id="warm")])

        def write() -> None:
            with other.connection.dbapi_connection.pipeline(), begin_immediate(other):  # type: ignore[union-attr]
                assert accept_many(other, second) == [True, True]
            done.set()

        with begin_immediate(engine_store) as conn:
            accept_many(conn, first)  # c9 inserted, not committed yet
            thread = threading.Thread(target=write)
            thread.start()
            time.sleep(0.3)
            assert not done.is_set()  # waiting for our c9
        thread.join(10)
    assert done.is_set()
    with engine_store.connect() as conn:
        rows = {r.source_id: r for r in conn.execute(sa.select(work_items)).all()}
        links = dict(conn.execute(sa.select(inbox.c.delivery_key, inbox.c.work_id)).all())
    assert rows["c9"].generation == 2
    assert rows["c9"].payload == '{"customer_id":"c9","email":"a@x","phone":"1","city":"Austin"}'
    assert rows["c1"].generation == (2 if knows_c1 else 1)
    assert links["id:a"] == links["id:b"] == rows["c9"].id
    assert links["id:c"] == rows["c1"].id
    engine_store.dispose()


def test_concurrent_batches_to_few_entities_lose_and_double_nothing(
    engine_store: sa.Engine,
) -> None:
    """The receiver's group commit (three writers on PostgreSQL) under a burst to a few
    entities, with retries of deliveries: each entity's row counts each delivery once and
    holds every field any of them sent."""
    writers = 3 if engine_store.dialect.name == "postgresql" else 1
    rng = random.Random(11)
    deliveries = [
        delivery(
            f"c{rng.randint(1, 6)}",
            rng.choice(["customer.updated", "customer.created"]),
            delivery_id=f"d{n}",
            received_at=float(n),
            **{f"f{n}": str(n)},
        )
        for n in range(600)
    ]
    retries = rng.sample(deliveries, 60)

    async def burst() -> list[bool]:
        committer = GroupCommitter(
            engine_store,
            accept,
            writers=writers,
            lock_order=lambda d: (d.location_id, d.entity_type, d.source_id),
            accept_many=accept_many,
        )
        try:
            return list(await asyncio.gather(*(committer.submit(d) for d in deliveries + retries)))
        finally:
            committer.close()

    answers = asyncio.run(burst())
    fresh: dict[str | None, int] = {}  # a retry may be committed before its first sending
    for d, answer in zip(deliveries + retries, answers, strict=True):
        fresh[d.delivery_id] = fresh.get(d.delivery_id, 0) + answer
    assert set(fresh.values()) == {1}
    with engine_store.connect() as conn:
        rows = conn.execute(sa.select(work_items)).all()
        links = dict(conn.execute(sa.select(inbox.c.delivery_key, inbox.c.work_id)).all())
    by_entity: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_entity.setdefault(d.source_id, []).append(d)
    assert sorted(r.source_id for r in rows) == sorted(by_entity)
    for row in rows:
        sent = by_entity[row.source_id]
        assert row.generation == len(sent)
        payload: dict[str, Any] = json.loads(row.payload)
        assert set(payload) == {"customer_id"} | {k for d in sent for k in d.payload}
        assert all(links[f"id:{d.delivery_id}"] == row.id for d in sent)


def pipeline_trace(engine: sa.Engine, batch: list[Delivery], path: Path) -> list[str]:
    """The protocol messages a batch exchanges in the group commit's transaction (libpq's
    trace): F for those sent, B for those received."""
    traced: list[Any] = []

    def trace(dbapi_conn: Any, *_: Any) -> None:  # from the checkout: BEGIN included
        traced.append(dbapi_conn.pgconn)
        dbapi_conn.pgconn.trace(out.fileno())

    with path.open("w") as out:
        sa.event.listen(engine, "checkout", trace)
        try:
            with _transaction(engine, pipeline=True) as conn:
                assert accept_many(conn, batch) == [True] * len(batch)
        finally:
            sa.event.remove(engine, "checkout", trace)
        for pgconn in traced:
            pgconn.untrace()  # after the commit and the pipeline's end
    return [" ".join(line.split("\t")[1:4:2]) for line in path.read_text().splitlines()]


@pytest.mark.postgres
def test_a_merge_heavy_batch_is_six_statements_and_two_waits(
    postgres_url: str, tmp_path: Path
) -> None:
    """32 deliveries merging into 32 existing rows: BEGIN, the inbox insert (which links each
    inbox row to the row the connection remembers), the lock, one update of all rows, the
    NOTIFY, COMMIT; the thread waits for the inbox insert and lock together, then for the
    commit (one Sync at the end: psycopg's own BEGIN and COMMIT synced each, 2 waits more),
    where one `UPDATE` per row made it 38 statements, the separate work insert and lock 6
    waits, and the links a statement."""
    engine = create_engine(postgres_url)
    migrate(engine)
    try:
        for round_ in range(3):  # rows created, the connection knows them, statements prepared
            batch = [
                delivery(f"c{n}", delivery_id=f"{round_}-{n}", updated_at=float(round_), n=round_)
                for n in range(32)
            ]
            messages = pipeline_trace(engine, batch, tmp_path / "trace")
        with engine.connect() as conn:
            generations = conn.execute(sa.select(work_items.c.generation)).scalars().all()
            links = conn.execute(
                sa.select(inbox.c.work_id, work_items.c.id).join(
                    work_items, work_items.c.source_id == inbox.c.source_id
                )
            ).all()
    finally:
        engine.dispose()
    executes = [m for m in messages if m.startswith("F Execute")]
    waits = sum(1 for a, b in itertools.pairwise(messages) if a[0] == "F" and b[0] == "B")
    assert len(executes) == 6
    assert waits == 2
    assert messages.count("F Sync") == 1  # the transaction's BEGIN and COMMIT are pipelined
    assert generations == [3] * 32
    assert len(links) == 96 and all(work_id == row_id for work_id, row_id in links)


@pytest.mark.postgres
def test_statements_that_find_rows_by_key_are_planned_per_batch(postgres_url: str) -> None:
    """The lock of the rows to merge into, the merge and the late links are never prepared
    (a generic plan made on a small table kept scanning it whole as it grew); the inserts
    are, after psycopg's threshold."""
    engine = create_engine(postgres_url)
    migrate(engine)
    try:
        with engine.connect() as conn:
            for round_ in range(12):  # known entities; one new and one made elsewhere a round
                with begin_immediate(engine) as other:
                    accept(other, delivery(f"elsewhere{round_}", delivery_id=f"e{round_}"))
                batch = [delivery(f"c{n}", delivery_id=f"{round_}-{n}") for n in range(4)]
                batch += [
                    delivery(f"new{round_}", delivery_id=f"n{round_}"),
                    delivery(f"elsewhere{round_}", delivery_id=f"f{round_}"),
                ]
                dbapi = conn.connection.dbapi_connection
                assert dbapi is not None
                with dbapi.pipeline(), begin_immediate(conn):
                    assert accept_many(conn, batch) == [True] * 6
            prepared = conn.execute(sa.text("SELECT statement FROM pg_prepared_statements"))
            statements = prepared.scalars().all()
    finally:
        engine.dispose()
    assert any(s.startswith("WITH drawn") for s in statements)  # the inbox insert
    assert any(s.startswith("INSERT INTO work_items") for s in statements)
    assert not [s for s in statements if "FOR UPDATE" in s or s.startswith("UPDATE")]


@pytest.mark.postgres
def test_a_batch_of_new_entities_links_its_inbox_rows_in_the_insert(
    postgres_url: str, tmp_path: Path
) -> None:
    """32 new customers: BEGIN, the inbox insert (drawing the work rows' ids), the work
    insert (with those ids), the NOTIFY, COMMIT: no statement to link the inbox rows
    afterwards, and every inbox row names its entity's row; 3 waits."""
    engine = create_engine(postgres_url)
    migrate(engine)
    try:
        for round_ in range(3):  # statements prepared; every round new entities
            batch = [delivery(f"r{round_}c{n}", delivery_id=f"{round_}-{n}") for n in range(32)]
            messages = pipeline_trace(engine, batch, tmp_path / "trace")
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.select(work_items.c.source_id, work_items.c.id)).all())
            links = conn.execute(sa.select(inbox.c.source_id, inbox.c.work_id)).all()
    finally:
        engine.dispose()
    executes = [m for m in messages if m.startswith("F Execute")]
    waits = sum(1 for a, b in itertools.pairwise(messages) if a[0] == "F" and b[0] == "B")
    assert len(executes) == 5
    assert waits == 3  # the inbox insert, the work insert, the commit
    assert len(rows) == len(links) == 96
    assert all(work_id == rows[source_id] for source_id, work_id in links)


@pytest.mark.parametrize("remembered", [True, False])
def test_a_delivery_id_seen_for_another_entity_creates_no_row(
    engine_store: sa.Engine, remembered: bool
) -> None:
    """A new entity whose only delivery reuses a stored delivery id is a duplicate: no work
    row (its drawn id is left unused), beside a new entity and an existing one in one batch
    (on the connection that remembers c2's row, or on one that does not: its insert
    conflicts and its inbox row is linked afterwards)."""
    with engine_store.connect() as conn:
        with begin_immediate(conn):
            accept_many(conn, [delivery("c1", delivery_id="x"), delivery("c2", delivery_id="y")])
        batch = [
            delivery("c3", delivery_id="x"),  # the id c1's delivery had: a duplicate
            delivery("c4", delivery_id="z"),
            delivery("c2", delivery_id="w", email="new"),
        ]
        if remembered:
            with begin_immediate(conn):
                assert accept_many(conn, batch) == [False, True, True]
        else:
            with _transaction(engine_store, pipeline=True) as tx:
                assert accept_many(tx, batch) == [False, True, True]
        rows = dict(conn.execute(sa.select(work_items.c.source_id, work_items.c.id)).all())
        links = conn.execute(sa.select(inbox.c.delivery_key, inbox.c.work_id)).all()
    assert set(rows) == {"c1", "c2", "c4"}
    assert dict(links) == {
        "id:x": rows["c1"],
        "id:y": rows["c2"],
        "id:z": rows["c4"],
        "id:w": rows["c2"],
    }


_DELIVERY = st.tuples(
    st.integers(0, 3),  # the entity
    st.sampled_from(EVENTS),
    st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(["0", "1", "2"]), max_size=3),
    st.none() | st.integers(1, 6) | st.floats(1, 6, allow_nan=False),  # updated_at
    st.sampled_from(["new", "new", "new", "retry", "twice"]),
)
_STATUSES = st.lists(st.sampled_from([None, "done", "dead", "leased", "pending"]), min_size=4)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batches=st.lists(st.tuples(st.lists(_DELIVERY, min_size=1, max_size=8), _STATUSES)))
def test_any_batches_equal_accept_in_order(
    engine_store: sa.Engine, batches: list[tuple[list[Any], list[str | None]]]
) -> None:
    """Hypothesis: any batches (retries, a delivery twice in a batch, deletes, completions,
    older timestamps, rows settled or leased between batches), pipelined through
    `accept_many` on PostgreSQL, leave the rows `accept` of each delivery in order leaves."""
    with begin_immediate(engine_store) as conn:
        conn.execute(sa.delete(inbox))
        conn.execute(sa.delete(work_items))
    engine_store.dispose()  # connections that remember no entity
    sent: list[Delivery] = []
    for n, (drawn, statuses) in enumerate(batches):
        batch: list[Delivery] = []
        for m, (entity, (event, action), fields, updated_at, kind) in enumerate(drawn):
            if kind == "retry" and sent:
                batch.append(sent[(n + m) % len(sent)])
                continue
            made = delivery(
                f"c{entity}",
                event,
                delivery_id=f"d{n}-{m}",
                updated_at=updated_at,
                received_at=float(n),
                action=action,
                **fields,
            )
            sent.append(made)
            batch.extend([made, made] if kind == "twice" else [made])
        with begin_immediate(engine_store) as conn:
            one_by_one = [accept(conn, as_half(d, "A")) for d in batch]
        with _transaction(engine_store, pipeline=True) as conn:
            assert accept_many(conn, [as_half(d, "B") for d in batch]) == one_by_one
        assert snapshot(engine_store, "B") == snapshot(engine_store, "A")
        with begin_immediate(engine_store) as conn:
            for entity, status in enumerate(statuses):
                if status is not None:
                    conn.execute(
                        sa.update(work_items)
                        .where(work_items.c.source_id == f"c{entity}")
                        .values(status=status, attempts=entity)
                    )
