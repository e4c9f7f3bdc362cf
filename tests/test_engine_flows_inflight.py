"""One sync at a time per entity within this process (`entity_lock`), and no lock kept after."""

from __future__ import annotations

import asyncio

import pytest

from ghlsync.engine.flows import _inflight
from ghlsync.engine.flows._inflight import entity_lock


async def test_one_holder_per_entity_and_nothing_kept_after() -> None:
    order: list[str] = []

    async def sync(name: str, source_id: str) -> None:
        async with entity_lock("loc", "contact", source_id):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(sync("a", "c1"), sync("b", "c1"), sync("c", "c2"))
    assert order.index("a-") < order.index("b+")  # same entity: one after the other
    assert order.index("c+") < order.index("a-")  # another entity: at the same time
    assert not _inflight._LOCKS


async def test_a_cancelled_waiter_and_a_failed_sync_leave_no_lock() -> None:
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with entity_lock("loc", "contact", "c1"):
            held.set()
            await release.wait()

    async def waiter() -> None:
        async with entity_lock("loc", "contact", "c1"):
            raise AssertionError("never granted")

    first = asyncio.ensure_future(holder())
    await held.wait()
    second = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    release.set()
    await first
    with pytest.raises(ValueError):
        async with entity_lock("loc", "contact", "c1"):
            raise ValueError("the sync failed")
    assert not _inflight._LOCKS
