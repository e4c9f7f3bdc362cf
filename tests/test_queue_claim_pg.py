"""The claim on PostgreSQL (driver level, lock and lease in one statement): rows another
transaction holds are skipped and the batch is filled from the next candidates, in fair order;
abandoned leases are taken over and counted attempts go on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import claim
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import work_items

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _add(engine: sa.Engine, location: str, n: int) -> list[int]:
    rows = [
        {
            "location_id": location,
            "entity_type": "contact",
            "source_id": f"{location}-{i}",
            "status": "pending",
            "event": "customer.updated",
            "payload": "{}",
            "available_at": float(i),
            "created_at": float(i),
            "updated_at": float(i),
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(work_items), rows)
        found = conn.execute(
            sa.select(work_items.c.id)
            .where(work_items.c.location_id == location)
            .order_by(work_items.c.available_at)
        )
        return list(found.scalars())


def test_rows_another_transaction_holds_are_skipped_and_the_batch_still_fills(
    engine: sa.Engine,
) -> None:
    clock = FakeClock()
    clock.advance(100)
    ids = _add(engine, "a", 6)
    with engine.connect() as holder:  # another claimer mid-transaction holds the two oldest
        holder.execute(
            sa.select(work_items.c.id).where(work_items.c.id.in_(ids[:2])).with_for_update()
        )
        batch = claim(engine, "w1", None, 3, 60, clock=clock)
        holder.rollback()
    assert [c.id for c in batch] == ids[2:5]  # the next ones, oldest first
    assert all(c.attempts == 1 and c.lease_owner == "w1" for c in batch)
    again = claim(engine, "w2", None, 10, 60, clock=clock)
    assert sorted(c.id for c in again) == sorted([*ids[:2], ids[5]])


def test_an_abandoned_lease_is_taken_over_with_its_attempt_counted(engine: sa.Engine) -> None:
    clock = FakeClock()
    (first,) = _add(engine, "a", 1)
    (taken,) = claim(engine, "w1", None, 1, 30, clock=clock)
    assert taken.id == first and taken.attempts == 1
    assert claim(engine, "w2", None, 5, 30, clock=clock) == []  # still leased
    clock.advance(31)
    (again,) = claim(engine, "w2", None, 5, 30, clock=clock)
    assert (again.id, again.attempts, again.lease_owner) == (first, 2, "w2")
    assert again.lease_token != taken.lease_token
