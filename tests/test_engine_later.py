"""`Later` (the worker's lease keeper): nothing made before the delay, the coroutine started
after it in the context `Later` was made in, and cancelled with it."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

from ghlsync.engine._later import Later

_WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_cancelled_before_the_delay_nothing_is_started() -> None:
    made: list[str] = []

    async def work() -> None:
        made.append("ran")

    def start() -> Coroutine[Any, Any, None]:
        made.append("made")
        return work()

    later = Later(0.05, start)
    later.cancel()
    await asyncio.sleep(0.1)
    assert made == [] and not later.started


async def test_after_the_delay_it_runs_in_the_makers_context_until_cancelled() -> None:
    seen: list[str] = []
    running = asyncio.Event()

    async def work() -> None:
        seen.append(_WHO.get())
        running.set()
        await asyncio.sleep(3600)

    _WHO.set("item")
    later = Later(0.01, work)
    _WHO.set("someone else")
    await asyncio.wait_for(running.wait(), timeout=5)
    assert seen == ["item"] and later.started
    task = later._task
    later.cancel()
    assert task is not None
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()
