"""A worker's places: an item whose GHL work is done frees its place while its outcome is
written (`Worker._free_slots`), and items claimed ahead take a freed place at once, without
a claim's round trip (`CLAIM_AHEAD`), unless they waited too long for one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.engine import Worker
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext
from ghlsync.mapping import AppConfig, MappedEvent, Mapper
from ghlsync.store._tables_engine import work_items
from tests._db import migrated
from tests._engine_kit import delivery, send, work_row
from tests.test_engine_worker_idle import _counting_claims


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


class _RowLock:
    """Another session holding one work row's lock (the item's settle waits for it)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._conn = engine.connect()

    def take(self, source_id: str) -> None:
        query = sa.select(work_items.c.id).where(work_items.c.source_id == source_id)
        self._conn.execute(query.with_for_update())

    def release(self) -> None:
        self._conn.rollback()
        self._conn.close()


@pytest.mark.postgres
async def test_the_next_item_starts_while_the_last_one_is_settling(engine: sa.Engine) -> None:
    """One slot: c1 syncs, then its settle waits on a lock held elsewhere; c2 is claimed and
    synced meanwhile (before, the slot stayed taken until c1's settle had committed)."""
    lock = _RowLock(engine)
    second = asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        if mapped.primary.source_id == "c1":
            await asyncio.to_thread(lock.take, "c1")  # c1's settle will wait for it
        else:
            second.set()
        return []

    config = AppConfig.default()
    worker = Worker(engine, object(), Mapper(config), config, sync_event=flows, concurrency=1)
    send(engine, delivery("c1", delivery_id="1"), delivery("c2", delivery_id="2"))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(second.wait(), timeout=10)
        assert work_row(engine, "c1")["status"] == "leased"  # still settling
    finally:
        await asyncio.to_thread(lock.release)
    await _until(lambda: worker.processed == 2)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert [work_row(engine, c)["status"] for c in ("c1", "c2")] == ["done", "done"]


def test_items_settling_hold_no_slot_up_to_as_many_again() -> None:
    """`_free_slots`: syncing items hold a slot each; settling ones none, up to `concurrency`."""
    config = AppConfig.default()
    worker = Worker(sa.create_engine("sqlite://"), object(), Mapper(config), config, concurrency=4)
    tasks: dict[Any, Any] = {object(): None for _ in range(6)}
    worker._settling = set(list(tasks)[:3])  # type: ignore[arg-type]
    assert worker._free_slots(tasks) == 1  # 3 syncing of 4
    worker._settling = set(tasks)  # type: ignore[arg-type]
    assert worker._free_slots(tasks) == 2  # 6 settling: at most 4 + 4 in all


async def _until(done: Callable[[], bool]) -> None:
    """Until `done()` (at most 5 s)."""
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)


async def test_a_freed_slot_starts_an_item_claimed_ahead_without_a_claim(
    engine_store: sa.Engine,
) -> None:
    """Two slots and one item claimed ahead (`CLAIM_AHEAD`): the first claim takes three;
    when the first item ends, the third starts before any other claim."""
    started: list[str] = []
    go = {f"c{i}": asyncio.Event() for i in range(3)}
    claims: list[list[int]] = []  # the claims' sizes (`_counting_claims`, once made)

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        started.append(f"{mapped.primary.source_id} after {len(claims[0])} claims")
        await go[mapped.primary.source_id].wait()
        return []

    config = AppConfig.default()
    worker = Worker(engine_store, object(), Mapper(config), config, sync_event=flows, concurrency=2)
    claims.append(_counting_claims(worker))
    sizes = claims[0]
    send(engine_store, *(delivery(f"c{i}", delivery_id=str(i)) for i in range(3)))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await _until(lambda: len(started) == 2)
    assert sizes[0] == 3 and started == ["c0 after 1 claims", "c1 after 1 claims"]
    go["c0"].set()
    await _until(lambda: len(started) == 3)
    assert started[2] == "c2 after 1 claims"  # taken from the items claimed ahead
    go["c1"].set()
    go["c2"].set()
    await _until(lambda: worker.processed == 3)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert [work_row(engine_store, f"c{i}")["status"] for i in range(3)] == ["done"] * 3


async def test_an_item_claimed_ahead_too_long_ago_goes_back_to_the_queue(
    engine_store: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Its lease is renewed only once it runs: one that waited over a third of its lease is
    given back (pending, due now) and claimed again, never started on an old lease."""
    hold = asyncio.Event()
    synced: list[str] = []

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.append(mapped.primary.source_id)
        if mapped.primary.source_id == "c0":
            await hold.wait()
        return []

    config = AppConfig.default()
    worker = Worker(engine_store, object(), Mapper(config), config, sync_event=flows, concurrency=1)
    worker.lease_seconds = 0.6  # stale after 0.2 s in waiting
    send(engine_store, delivery("c0", delivery_id="0"), delivery("c1", delivery_id="1"))
    stop = asyncio.Event()
    caplog.set_level("INFO", logger="ghlsync")
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.35)
    assert synced == ["c0"]
    hold.set()
    await _until(lambda: worker.processed == 2)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert synced == ["c0", "c1"]
    assert "claimed ahead too long ago" in caplog.text
    assert work_row(engine_store, "c1")["status"] == "done"


async def test_places_freed_in_one_turn_start_their_items_together(engine_store: sa.Engine) -> None:
    """Four items end in the same turn of the loop: the two claimed ahead start in one batch
    (on SQLite their `pending` rows and rate-limit takes then share transactions)."""
    go = asyncio.Event()
    starts: list[list[str]] = []

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        if mapped.primary.source_id in {f"c{i}" for i in range(4)}:
            await go.wait()
        return []

    config = AppConfig.default()
    worker = Worker(engine_store, object(), Mapper(config), config, sync_event=flows, concurrency=4)
    start = worker._start

    def counted(items: Any) -> Any:
        starts.append([item.source_id for item in items])
        return start(items)

    worker._start = counted  # type: ignore[method-assign]
    send(engine_store, *(delivery(f"c{i}", delivery_id=str(i)) for i in range(6)))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await _until(lambda: bool(starts))
    await asyncio.sleep(0.05)
    assert starts == [["c0", "c1", "c2", "c3"]]  # two more claimed ahead, waiting
    go.set()  # all four end in one turn
    await _until(lambda: worker.processed == 6)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert starts[1] == ["c4", "c5"]


def test_unset_concurrency_is_32_on_postgresql_and_16_on_sqlite(
    sqlite_url: str, postgres_url: str
) -> None:
    """`worker.concurrency` unset (the preset): by the store; set, or given, it wins."""
    config = AppConfig.default()
    assert config.worker.concurrency is None
    mapper = Mapper(config)
    for url, want in ((postgres_url, 32), (sqlite_url, 16)):
        engine = sa.create_engine(url)
        try:
            assert Worker(engine, object(), mapper, config).concurrency == want
            set_to = config.model_copy(
                update={"worker": config.worker.model_copy(update={"concurrency": 5})}
            )
            assert Worker(engine, object(), mapper, set_to).concurrency == 5
            assert Worker(engine, object(), mapper, set_to, concurrency=7).concurrency == 7
        finally:
            engine.dispose()
