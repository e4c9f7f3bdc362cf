"""accept_many(): a batch leaves the store exactly as `accept` of each delivery in order would.

Differential: the same random batches go into two halves of one store, one half through
`accept` (one call per delivery, one transaction per batch, as the receiver did before) and
the other through `accept_many`; answers, inbox rows and work rows must match after every
batch, including batches with duplicates, several deliveries to one entity, deletes,
completions, older timestamps, and rows the worker left done, dead or leased meanwhile.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.engine import Delivery, accept, accept_many
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import inbox, work_items
from tests._engine_kit import delivery

EVENTS = [
    ("customer.updated", None),
    ("customer.created", None),
    ("customer.deleted", "delete"),
    ("task.completed", "complete"),
    ("deal.stage_changed", "upsert"),
]
FIELDS = ["first_name", "email", "phone", "tags"]


def as_half(d: Delivery, half: str) -> Delivery:
    """The same delivery for one half of the store (its own connection and location)."""
    return Delivery(
        connection_id=f"{half}-{d.connection_id}",
        location_id=f"{half}-{d.location_id}",
        event=d.event,
        delivery_id=d.delivery_id,
        payload=d.payload,
        entity_type=d.entity_type,
        source_id=d.source_id,
        source_updated_at=d.source_updated_at,
        received_at=d.received_at,
        action=d.action,
    )


def random_batch(rng: random.Random, sent: list[Delivery], clock: list[float]) -> list[Delivery]:
    batch: list[Delivery] = []
    for _ in range(rng.randint(1, 14)):
        if sent and rng.random() < 0.15:
            batch.append(rng.choice(sent))  # a retry of an earlier delivery
            continue
        clock[0] += rng.choice([0.0, 0.5, 1.0])
        event, action = rng.choice(EVENTS)
        fields = {f: f"{f}-{rng.randint(0, 9)}" for f in rng.sample(FIELDS, rng.randint(0, 3))}
        with_id = rng.random() < 0.8
        made = delivery(
            f"c{rng.randint(1, 5)}",
            event,
            location=rng.choice(["loc1", "loc1", "loc2"]),
            delivery_id=f"d-{rng.getrandbits(40):x}" if with_id else None,
            # ints too: a batch's timestamps go to PostgreSQL as one array, int and float mixed
            updated_at=rng.choice([None, float(rng.randint(1, 30)), rng.randint(1, 30)]),
            received_at=clock[0],
            action=action,
            **fields,
        )
        batch.append(made)
        sent.append(made)
        if rng.random() < 0.1:
            batch.append(made)  # the same delivery twice in one batch
    return batch


def settle_some(engine: sa.Engine, rng: random.Random) -> None:
    """What a worker does meanwhile: some rows done, dead, leased or back to pending."""
    with begin_immediate(engine) as conn:
        keys = conn.execute(
            sa.select(work_items.c.location_id, work_items.c.entity_type, work_items.c.source_id)
            .where(work_items.c.location_id.like("A-%"))
            .order_by(work_items.c.location_id, work_items.c.source_id)
        ).all()
        for location, entity_type, source_id in keys:
            if rng.random() < 0.5:
                continue
            status = rng.choice(["done", "dead", "leased", "pending"])
            attempts = rng.randint(0, 3)
            for half in ("A", "B"):
                conn.execute(
                    sa.update(work_items)
                    .where(
                        work_items.c.location_id == half + location[1:],
                        work_items.c.entity_type == entity_type,
                        work_items.c.source_id == source_id,
                    )
                    .values(status=status, attempts=attempts)
                )


def snapshot(engine: sa.Engine, half: str) -> tuple[list[Any], list[Any]]:
    """Both tables of one half, ids replaced by what they point at, halves made comparable."""
    with engine.connect() as conn:
        work = conn.execute(
            sa.select(work_items)
            .where(work_items.c.location_id.like(f"{half}-%"))
            .order_by(work_items.c.location_id, work_items.c.source_id)
        ).all()
        ids = {row.id: (row.location_id[2:], row.source_id) for row in work}
        work_rows = [
            {**row._mapping, "id": None, "location_id": row.location_id[2:]} for row in work
        ]
        boxes = conn.execute(
            sa.select(inbox).where(inbox.c.connection_id.like(f"{half}-%")).order_by(inbox.c.id)
        ).all()
        inbox_rows = [
            {
                **row._mapping,
                "id": None,
                "connection_id": row.connection_id[2:],
                "location_id": row.location_id[2:],
                "work_id": ids.get(row.work_id),
            }
            for row in boxes
        ]
    return work_rows, inbox_rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_accept_many_equals_accept_in_order(engine_store: sa.Engine, seed: int) -> None:
    rng = random.Random(seed)
    sent: list[Delivery] = []
    clock = [1_700_000_000.0]
    for _ in range(8):
        batch = random_batch(rng, sent, clock)
        with begin_immediate(engine_store) as conn:
            one_by_one = [accept(conn, as_half(d, "A")) for d in batch]
        with begin_immediate(engine_store) as conn:
            batched = accept_many(conn, [as_half(d, "B") for d in batch])
        assert batched == one_by_one
        assert snapshot(engine_store, "B") == snapshot(engine_store, "A")
        settle_some(engine_store, rng)
    work, boxes = snapshot(engine_store, "B")
    assert any(row["generation"] > 1 for row in work)  # merges happened
    assert len(boxes) < len(sent) + 1  # and duplicates were refused


def test_one_entity_many_deliveries_in_one_batch(engine_store: sa.Engine) -> None:
    batch = [
        delivery(delivery_id="d-1", event="customer.created", updated_at=10.0, first_name="Ann"),
        delivery(delivery_id="d-2", updated_at=5.0, first_name="Old", email="a@x.com"),
        delivery(delivery_id="d-1", updated_at=11.0, first_name="Retry"),
        delivery(delivery_id="d-3", event="task.completed", action="complete"),
    ]
    with begin_immediate(engine_store) as conn:
        assert accept_many(conn, batch) == [True, True, False, True]
    _, boxes = snapshot_one(engine_store)
    assert len(boxes) == 3
    with engine_store.connect() as conn:
        row = conn.execute(sa.select(work_items)).one()
    assert row.generation == 3
    assert row.payload == '{"customer_id":"c1","first_name":"Ann","email":"a@x.com"}'
    assert row.event == "task.completed"
    assert all(box.work_id == row.id for box in boxes)


def snapshot_one(engine: sa.Engine) -> tuple[Sequence[Any], Sequence[Any]]:
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(work_items)).all(),
            conn.execute(sa.select(inbox)).all(),
        )


def test_a_full_batch_of_new_and_then_existing_entities(engine_store: sa.Engine) -> None:
    size = 512  # the receiver's largest batch (server._commit.DEFAULT_MAX_BATCH)
    first = [delivery(f"c{n}", delivery_id=f"a-{n}") for n in range(size)]
    again = [delivery(f"c{n}", delivery_id=f"b-{n}", first_name="Ann") for n in range(size)]
    for batch in (first, again):
        with begin_immediate(engine_store) as conn:
            assert accept_many(conn, batch) == [True] * size
    with engine_store.connect() as conn:
        generations = conn.execute(sa.select(work_items.c.generation)).scalars().all()
        linked = conn.execute(
            sa.select(sa.func.count()).select_from(inbox).where(inbox.c.work_id.is_not(None))
        ).scalar_one()
    assert generations == [2] * size
    assert linked == 2 * size
