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
from types import TracebackType

# Each entity's lock with the number of its holders and waiters: an entry lives as long as
# someone holds or awaits it, so the map never grows with the number of entities ever synced
# (a plain dict and a count cost less per sync than weak references). The loop is part of the
# key: an asyncio lock belongs to one event loop.
_LOCKS: dict[tuple[int, str, str, str], tuple[asyncio.Lock, list[int]]] = {}


class entity_lock:  # lower case: used as the function it was, `async with entity_lock(...)`
    """Hold the process-wide lock of one entity while syncing it."""

    __slots__ = ("_key", "_lock", "_users")

    def __init__(self, location_id: str, entity_type: str, source_id: str) -> None:
        self._key = (id(asyncio.get_running_loop()), location_id, entity_type, source_id)

    async def __aenter__(self) -> None:
        found = _LOCKS.get(self._key)
        if found is None:
            found = _LOCKS[self._key] = (asyncio.Lock(), [0])
        self._lock, self._users = found
        self._users[0] += 1
        try:
            await self._lock.acquire()
        except BaseException:  # cancelled while waiting: no longer a user
            self._leave()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        self._users[0] -= 1
        if not self._users[0]:
            del _LOCKS[self._key]
