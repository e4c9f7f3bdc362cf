"""PostgreSQL: a claim's job reads its DripJobs items' ID-map rows and sync states right after
the claim, on the claim's connection (`PgBatch.early_read`, `read_early`, `seed`); the first
`load` of a key takes that row without a read of its own, unless this process wrote the key
since the claim was queued (then it reads again)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Worker
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext
from ghlsync.engine.queue import _claim_pg
from ghlsync.engine.queue._queue import Claim
from ghlsync.engine.state import _pgbatch
from ghlsync.engine.state._ledger import SqlLedger
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.mapping import AppConfig, MappedEvent, Mapper
from ghlsync.store._tables_engine import work_items
from tests._db import migrated
from tests._engine_kit import delivery, send

pytestmark = pytest.mark.postgres
KEY = ("loc1", "contact", "c1")


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


def _queue_items(engine: sa.Engine, *source_ids: str) -> None:
    rows = [
        {
            "location_id": "loc1",
            "entity_type": "contact",
            "source_id": source_id,
            "status": "pending",
            "event": "customer.updated",
            "payload": "{}",
            "available_at": 0.0,
            "created_at": 0.0,
            "updated_at": 0.0,
        }
        for source_id in source_ids
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(work_items), rows)


def _counting_reads(batch: _pgbatch.PgBatch) -> list[tuple[str, int]]:
    """Every statement that reads rows: (the thread that ran it, how many keys)."""
    reads: list[tuple[str, int]] = []
    real = batch._load_many

    def counted(conn: Any, keys: list[Any]) -> Any:
        reads.append((threading.current_thread().name, len(keys)))
        return real(conn, keys)

    batch._load_many = counted  # type: ignore[method-assign]
    return reads


async def _claim(engine: sa.Engine, batch: _pgbatch.PgBatch, between: Any = None) -> list[Claim]:
    """A claim as the worker makes it: its job reads the items' rows; `between` runs while
    the claim is in flight (after the read, before the rows are seeded)."""
    claimer = _claim_pg.for_engine(engine)
    assert claimer is not None
    early = batch.early_read()
    try:
        claimed = await claimer.claim_noting(
            "w",
            ["loc1"],
            10,
            30.0,
            lambda: 1.0,
            lambda conn, items: batch.read_early(
                conn, early, [(i.location_id, i.entity_type, i.source_id) for i in items]
            ),
        )
        if between is not None:
            await between()
        return claimed.items
    finally:
        batch.seed(early)


async def test_the_claim_reads_its_items_rows_and_the_first_load_takes_them(
    engine: sa.Engine,
) -> None:
    ledger = SqlLedger(engine, "loc1", FakeClock())
    await ledger.mark_pending("contact", "c1", {"email": "ann@x.io"})
    _queue_items(engine, "c1", "c2")
    batch = _pgbatch.for_engine(engine)
    assert batch is not None
    reads = _counting_reads(batch)
    claimed = await _claim(engine, batch)
    assert sorted(i.source_id for i in claimed) == ["c1", "c2"]
    assert reads == [("ghlsync-claim", 2)]  # both items, in the claim's own job
    row, state = await ledger.load("contact", "c1")
    assert row is not None and row.state == "pending" and state is None
    assert await ledger.load("contact", "c2") == (None, None)
    assert len(reads) == 1  # the loads read nothing more
    await ledger.load("contact", "c1")
    assert reads[1:] == [("ghlsync-ledger-reads", 1)]  # a second load reads anew
    assert not batch._early and not batch._watching


async def test_a_write_while_the_claim_is_in_flight_makes_the_load_read_again(
    engine: sa.Engine,
) -> None:
    """The claim read "nothing there"; this process wrote the row before the claim was
    answered: the load must not take the claim's row."""
    ledger = SqlLedger(engine, "loc1", FakeClock())
    _queue_items(engine, "c1")
    batch = _pgbatch.for_engine(engine)
    assert batch is not None

    async def write() -> None:
        await ledger.mark_pending("contact", "c1", {"email": "ann@x.io"})

    await _claim(engine, batch, between=write)
    assert KEY not in batch._early
    row, _ = await ledger.load("contact", "c1")
    assert row is not None and row.state == "pending"


async def test_a_write_after_the_claim_makes_the_load_read_again(engine: sa.Engine) -> None:
    clock = FakeClock()
    ledger = SqlLedger(engine, "loc1", clock)
    batch = _pgbatch.for_engine(engine)
    assert batch is not None
    _queue_items(engine, "c1")
    await _claim(engine, batch)
    assert KEY in batch._early
    await ledger.mark_pending("contact", "c1", {"email": "ann@x.io"})
    row, _ = await ledger.load("contact", "c1")
    assert row is not None and row.state == "pending"  # not the claim's "nothing there"

    batch._early[KEY] = (None, None)  # as a claim would leave it
    await ledger.confirm("contact", "c1", "g1", SyncState("h", 1.0, {}))
    row, state = await ledger.load("contact", "c1")
    assert row is not None and (row.state, row.ghl_id) == ("confirmed", "g1")
    assert state is not None and state.content_hash == "h"

    batch._early[KEY] = (row, state)
    await ledger.forget("contact", "c1")
    assert await ledger.load("contact", "c1") == (None, None)


async def test_a_failed_early_read_leaves_the_claim_and_the_loads_read(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    batch = _pgbatch.for_engine(engine)
    assert batch is not None
    _queue_items(engine, "c1")

    def broken(conn: Any, keys: list[Any]) -> Any:
        raise RuntimeError("the store went away")

    real = batch._load_many
    batch._load_many = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="ghlsync.engine"):
        claimed = await _claim(engine, batch)
    assert [i.source_id for i in claimed] == ["c1"]  # claimed all the same
    assert "reading the claimed items early failed" in caplog.text
    assert not batch._early
    batch._load_many = real  # type: ignore[method-assign]
    assert await SqlLedger(engine, "loc1", FakeClock()).load("contact", "c1") == (None, None)


async def test_a_worker_on_postgresql_reads_its_items_with_the_claim(
    engine: sa.Engine,
) -> None:
    """Through the worker: each item's flow loads its own row and finds what was there,
    read by its claim; no load reads on its own, and nothing is left seeded after."""
    ledger = SqlLedger(engine, "loc1", FakeClock())
    await ledger.mark_pending("contact", "c1", {"email": "ann@x.io"})
    batch = _pgbatch.for_engine(engine)
    assert batch is not None
    reads = _counting_reads(batch)
    seen: dict[str, Any] = {}

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        source_id = mapped.primary.source_id
        seen[source_id] = await SqlLedger(engine, ctx.location_id, ctx.clock).load(
            "contact", source_id
        )
        return []

    config = AppConfig.default()
    worker = Worker(engine, object(), Mapper(config), config, sync_event=flows, concurrency=4)
    send(engine, delivery("c1", delivery_id="1"), delivery("c2", delivery_id="2"))
    assert await worker.run_once() == 2
    assert seen["c1"][0] is not None and seen["c1"][0].state == "pending"
    assert seen["c2"] == (None, None)
    assert [thread for thread, _ in reads] == ["ghlsync-claim"]
    assert not batch._early and not batch._watching
