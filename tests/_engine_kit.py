"""Helpers for the engine's queue and worker tests: a migrated store and deliveries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Delivery, accept
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import work_items


@pytest.fixture
def engine_store(database_url: str) -> Iterator[sa.Engine]:
    """A migrated store (SQLite file and PostgreSQL)."""
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine_clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


def delivery(
    source_id: str = "c1",
    event: str = "customer.updated",
    *,
    location: str = "loc1",
    entity_type: str = "contact",
    delivery_id: str | None = None,
    updated_at: float | None = None,
    received_at: float = 1_700_000_000.0,
    action: str | None = None,
    **fields: Any,
) -> Delivery:
    if entity_type == "contact":
        payload: dict[str, Any] = {"customer_id": source_id, **fields}
    else:
        payload = {f"{entity_type}_id": source_id, "customer_id": "c-parent", **fields}
    return Delivery(
        connection_id="conn1",
        location_id=location,
        event=event,
        delivery_id=delivery_id,
        payload=payload,
        entity_type=entity_type,
        source_id=source_id,
        source_updated_at=updated_at,
        received_at=received_at,
        action=action,
    )


def send(engine: sa.Engine, *deliveries: Delivery) -> list[bool]:
    """Accept each delivery in its own transaction, as the receiver does."""
    results = []
    for item in deliveries:
        with begin_immediate(engine) as conn:
            results.append(accept(conn, item))
    return results


def work_row(engine: sa.Engine, source_id: str, location: str = "loc1") -> Mapping[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(work_items).where(
                work_items.c.source_id == source_id, work_items.c.location_id == location
            )
        ).one()
    return dict(row._mapping)


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def steal_lease(engine: sa.Engine, source_id: str) -> None:
    """Another worker takes the entity's work row over (its lease token is no longer ours)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(work_items)
            .where(work_items.c.source_id == source_id)
            .values(lease_owner="another-worker", lease_token="theirs")
        )
