"""A drained worker's wake-ups: it claims when told of new work, not each time an item ends.

At a low delivery rate every item is claimed alone; a claim after each finished item (which
brings no new work) doubled the claims per delivery, each several statements (issue 13).
Yet a delivery merged into an item in flight must still be synced at once: its wake-up came
while the row was leased, and the settle puts the row back to pending.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import sqlalchemy as sa

from ghlsync.engine import Worker
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext
from ghlsync.mapping import AppConfig, MappedEvent, Mapper
from tests._engine_kit import delivery, send, work_row


def _worker(engine: sa.Engine, flows: Any) -> Worker:
    config = AppConfig.default()
    worker = Worker(engine, object(), Mapper(config), config, sync_event=flows)
    worker.poll_interval = worker.idle_poll = 3600  # only wake-ups and finished items count
    return worker


def _counting_claims(worker: Worker) -> list[int]:
    """Wrap the worker's claim; the list gets each claim's size."""
    sizes: list[int] = []
    claim = worker._claim

    async def counted(limit: int) -> Any:
        got = await claim(limit)
        sizes.append(len(got))
        return got

    worker._claim = counted  # type: ignore[method-assign]
    return sizes


async def test_an_item_finishing_in_a_drained_worker_claims_nothing(
    engine_store: sa.Engine,
) -> None:
    synced, done = asyncio.Event(), asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.set()
        await done.wait()
        return []

    worker = _worker(engine_store, flows)
    sizes = _counting_claims(worker)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)  # started, found nothing, idle
    await asyncio.to_thread(send, engine_store, delivery("c1"))  # wakes it
    await asyncio.wait_for(synced.wait(), timeout=10)
    assert sizes[-1] == 1
    before = len(sizes)
    done.set()
    await asyncio.sleep(0.3)  # the item settles; nothing new came
    assert worker.processed == 1
    assert work_row(engine_store, "c1")["status"] == "done"
    assert len(sizes) == before, f"claims after the item finished: {sizes[before:]}"
    stop.set()
    await asyncio.wait_for(running, timeout=10)


async def test_a_delivery_merged_into_an_item_in_flight_is_synced_when_it_settles(
    engine_store: sa.Engine,
) -> None:
    seen: list[str] = []
    first_running, release, second = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        seen.append(str(mapped.primary.body.get("city")))
        if len(seen) == 1:
            first_running.set()
            await release.wait()
        else:
            second.set()
        return []

    worker = _worker(engine_store, flows)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(send, engine_store, delivery("c1", city="Austin", delivery_id="d1"))
    await asyncio.wait_for(first_running.wait(), timeout=10)
    # Merged into the leased row; its wake-up finds nothing to claim (the row is leased).
    await asyncio.to_thread(
        send, engine_store, delivery("c1", city="Dallas", delivery_id="d2", updated_at=2e9)
    )
    await asyncio.sleep(0.3)
    release.set()  # settles back to pending: the worker must claim it now, not at a poll
    await asyncio.wait_for(second.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert seen == ["Austin", "Dallas"]
    assert work_row(engine_store, "c1")["status"] == "done"


async def test_a_busy_worker_keeps_no_finished_item(engine_store: sa.Engine) -> None:
    """A long-running worker holds only the items in flight. Finished items whose claim
    found more work to take (the usual case under load) were kept with their tasks, claims
    and payloads: `serve`'s memory grew with every synced change (over 1 KB each, +225 MB in a
    10-minute soak at 500 deliveries/s)."""

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        await asyncio.sleep(0)
        return []

    worker = _worker(engine_store, flows)
    worker.concurrency = 4
    await asyncio.to_thread(send, engine_store, *(delivery(f"c{i}") for i in range(60)))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    for _ in range(1000):
        if worker.processed >= 60:
            break
        await asyncio.sleep(0.01)
    assert worker.processed == 60
    await asyncio.sleep(0.1)  # the loop's pass after the last item ends
    kept = [
        task
        for task in gc.get_objects()
        if isinstance(task, asyncio.Task) and "Worker._process" in repr(task.get_coro())
    ]
    assert len(kept) <= worker.concurrency, f"{len(kept)} item tasks kept after 60 synced"
    stop.set()
    await asyncio.wait_for(running, timeout=10)
