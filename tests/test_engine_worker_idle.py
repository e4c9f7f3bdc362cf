"""A drained worker's wake-ups: it claims when told of new work, not each time an item ends.

At a low delivery rate every item is claimed alone; a claim after each finished item (which
brings no new work) doubled the claims per delivery, each several statements (issue 13).
Yet a delivery merged into an item in flight must still be synced at once: its wake-up came
while the row was leased, and the settle puts the row back to pending.
"""

from __future__ import annotations

import asyncio
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
