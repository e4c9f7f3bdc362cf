"""The PostgreSQL claim reads each location's oldest due items from the claim index in its
order (`ix_work_claim` ends with the id, migration 0017) and stops after the few it wants: it
never reads and sorts a location's whole backlog to lease two of its items."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.queue import _claim_pg, _queue
from ghlsync.engine.queue._fair import ranked_pg_params
from ghlsync.store._tables_engine import work_items
from tests._db import migrated
from tests._pg_plans import plan_kept

pytestmark = pytest.mark.postgres

BACKLOG = 1_000
NOW = 10_000.0


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


def _fill(engine: sa.Engine) -> None:
    """One location's backlog of due items, due times in pairs (the id breaks the ties)."""
    rows = [
        {
            "location_id": "loc",
            "entity_type": "contact",
            "source_id": f"c{i}",
            "status": "pending",
            "event": "customer.updated",
            "payload": "{}",
            "available_at": float(i // 2),
            "created_at": 0.0,
            "updated_at": 0.0,
        }
        for i in range(BACKLOG)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(work_items), rows)


def _claim_plan(engine: sa.Engine, limit: int) -> str:
    """The claim's plan as run (`EXPLAIN ANALYZE` of `claim_noting_work`'s statement, rolled
    back)."""
    params = {**_queue._lease_params("w", 30.0, NOW), **ranked_pg_params(["loc"], limit)}
    sql, args = _queue._RAW_CLAIM_NOTING_PG.args(engine.dialect, params)
    with engine.connect() as conn:  # not committed: rolled back
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, args)
        return "\n".join(row[0] for row in cursor.fetchall())


def _work_items_read(plan: str) -> list[int]:
    """Rows each scan of `work_items` returned, per loop."""
    scans = re.findall(r"Scan .*on work_items .*\(actual rows=(\d+) loops=\d+\)", plan)
    return [int(rows) for rows in scans]


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
def test_a_claim_reads_a_few_rows_of_a_long_backlog(engine: sa.Engine, analyzed: bool) -> None:
    """Fresh (no statistics, as a new store, or autovacuum off) or analyzed, the claim of 2
    reads each location's oldest `k` (4) from the index, not its 1,000 due items."""
    _fill(engine)
    if analyzed:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE work_items")
    plan = _claim_plan(engine, limit=2)
    assert plan.startswith("Nested Loop Left Join (actual rows=2 "), plan
    read = _work_items_read(plan)
    assert read, plan
    assert max(read) <= 4, plan


def test_the_claim_takes_the_oldest_by_due_time_then_id(engine: sa.Engine) -> None:
    """The order the index now gives is the claim's own: ties of due time go by id."""
    _fill(engine)
    got = _queue.claim_noting_work(engine, "w", ["loc"], 3, 30.0, clock=FakeClock(NOW))
    with engine.connect() as conn:
        first = conn.execute(
            sa.select(work_items.c.id).order_by(work_items.c.available_at, work_items.c.id).limit(3)
        ).scalars()
        assert [item.id for item in got.items] == list(first)


def test_a_plan_made_on_an_empty_store_reads_a_few_rows_of_a_long_backlog(
    engine: sa.Engine,
) -> None:
    """The claim thread keeps one generic plan per connection (`_claim_pg.PG_SETTINGS`),
    maybe made on a new, empty store: on a long backlog it still reads each location's
    oldest `k` from the index, and no table whole."""
    params = {**_queue._lease_params("w", 30.0, NOW), **ranked_pg_params(["loc"], 2)}
    sql, args = _queue._RAW_CLAIM_NOTING_PG.args(engine.dialect, params)
    # The plan stays: new rows do not make PostgreSQL plan again.
    plan = plan_kept(engine, "claim", sql, args, _claim_pg.PG_SETTINGS, lambda: _fill(engine))
    assert plan.startswith("Nested Loop Left Join (actual rows=2 "), plan
    assert "Seq Scan" not in plan, plan
    read = _work_items_read(plan)
    assert read, plan
    assert max(read) <= 4, plan


def test_the_claim_thread_plans_its_statement_once(engine: sa.Engine) -> None:
    """The worker's claims on PostgreSQL (`_claim_pg`) run one prepared statement on a kept
    connection, planned once: not planned again at every claim (~1 ms each, more than the
    claim's run), as on whichever pooled connection the executor's thread came up with."""
    _fill(engine)
    claimer = _claim_pg.for_engine(engine)
    assert claimer is not None

    async def claims() -> tuple[list[int], list[Any]]:
        got: list[int] = []
        for _ in range(8):
            claimed = await claimer.claim_noting("w", ["loc"], 1, 30.0, lambda: NOW)
            got += [item.id for item in claimed.items]
        plans = await claimer._thread.run(
            lambda conn: conn.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%picked%'"
            ).fetchall()
        )
        return got, plans

    got, plans = asyncio.run(claims())
    with engine.connect() as conn:
        oldest = conn.execute(
            sa.select(work_items.c.id).order_by(work_items.c.available_at, work_items.c.id).limit(8)
        ).scalars()
        assert got == list(oldest)
    assert plans == [(8, 0)]
