"""One sync at a time per entity within this process.

A worker runs a batch's items concurrently, and several of them may write the same entity: the
children of one new customer each carry that customer's contact. Without a lock the second
would find the first one's `pending` ID-map row while its create is still in flight, take it
for a crash and spend a lookup (or worse, a second create). With it, the second waits for the
first and then sees the confirmed row. A pending row left by another process (or by a failed
attempt here) is still resolved by lookup: that is what the pending discipline is for.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Weak values: a lock lives as long as someone holds or awaits it, so the map never grows with
# the number of entities ever synced. The loop is part of the key: an asyncio lock belongs to
# one event loop.
_LOCKS: weakref.WeakValueDictionary[tuple[int, str, str, str], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


@asynccontextmanager
async def entity_lock(location_id: str, entity_type: str, source_id: str) -> AsyncIterator[None]:
    """Hold the process-wide lock of one entity while syncing it."""
    key = (id(asyncio.get_running_loop()), location_id, entity_type, source_id)
    lock = _LOCKS.get(key)
    if lock is None:
        lock = _LOCKS[key] = asyncio.Lock()
    async with lock:
        yield
