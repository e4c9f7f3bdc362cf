"""`DbThread` hands over the jobs an event-loop turn queued as one batch, at the turn's end:
the tasks an answer wakes together queue their next jobs in one turn, and a bulk function
gets them all (one statement), however fast the thread would have woken for the first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.store import create_engine
from ghlsync.store._dbthread import DbThread


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    yield engine
    engine.dispose()


async def test_one_turns_jobs_reach_the_bulk_together(engine: sa.Engine) -> None:
    thread = DbThread(engine)
    calls: list[list[int]] = []

    def bulk(conn: Any, items: list[int]) -> list[int]:
        calls.append(items)
        return [conn.execute("SELECT ?", (i,)).fetchone()[0] for i in items]

    await thread.run(lambda conn: None)  # the thread is up and waiting for work
    futures = []
    for i in range(5):
        futures.append(thread.run_bulk(bulk, i))
        time.sleep(0.01)  # noqa: ASYNC251 - blocking on purpose: a woken thread would take it
    assert await asyncio.gather(*futures) == [0, 1, 2, 3, 4]
    assert calls == [[0, 1, 2, 3, 4]]


async def test_tasks_woken_together_share_their_next_batch(engine: sa.Engine) -> None:
    thread = DbThread(engine)
    calls: list[list[str]] = []

    def bulk(conn: Any, items: list[str]) -> list[str]:
        calls.append(items)
        return items

    async def twice(name: str) -> str:
        await thread.run_bulk(bulk, f"{name}1")
        time.sleep(0.01)  # noqa: ASYNC251 - the turn blocks: its jobs still go together
        return await thread.run_bulk(bulk, f"{name}2")

    assert await asyncio.gather(twice("a"), twice("b"), twice("c")) == ["a2", "b2", "c2"]
    assert calls == [["a1", "b1", "c1"], ["a2", "b2", "c2"]]
