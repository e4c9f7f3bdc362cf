"""`Later`: a coroutine started after a delay unless cancelled first.

The worker renews an item's lease while the item is in flight, the first time a third of a
lease after it started. Nearly every item is done long before: a task per item that slept
until then and was cancelled cost ~12 µs of CPU per item (made, stepped to its sleep,
cancelled, stepped again to end), ~1% of a synced change in the serve shape. A timer
cancelled unfired costs a tenth of that; the task is made only when the timer fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Later"]


class Later:
    """Run `start()` (a coroutine, as a task of its own) `delay` seconds from now, on the
    running loop, unless `cancel` comes first; `cancel` also cancels the task once made.
    The task runs in the context `Later` was made in (as one made there would)."""

    __slots__ = ("_start", "_task", "_timer")

    def __init__(self, delay: float, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._start = start
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    @property
    def started(self) -> bool:
        """The delay has passed (uncancelled): the coroutine runs, or has run."""
        return self._task is not None

    def cancel(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    def _fire(self) -> None:
        self._task = asyncio.ensure_future(self._start())
