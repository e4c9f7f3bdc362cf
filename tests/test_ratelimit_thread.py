"""The SQL limiter's thread (`DbThread`): order, batches, cancellation, idle exit, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.ghl._ratelimit._thread import DbThread
from ghlsync.store import create_engine


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    yield engine
    engine.dispose()


def _blocker() -> tuple[threading.Event, Any]:
    """A job that holds the thread until the event is set: later jobs queue up meanwhile."""
    release = threading.Event()

    def job(_conn: Any) -> str:
        release.wait(5)
        return "held"

    return release, job


async def test_jobs_queued_together_run_in_order_and_a_bulk_gets_its_run_of_items(
    engine: sa.Engine,
) -> None:
    thread = DbThread(engine)
    calls: list[list[int]] = []

    def bulk(conn: Any, items: list[int]) -> list[int]:
        calls.append(items)
        return [conn.execute("SELECT ?", (i * 10,)).fetchone()[0] for i in items]

    release, held = _blocker()
    first = thread.run(held)
    futures: list[asyncio.Future[Any]] = [thread.run_bulk(bulk, 1), thread.run_bulk(bulk, 2)]
    futures += [thread.run(lambda conn: "plain"), thread.run_bulk(bulk, 3)]
    release.set()
    assert await first == "held"
    assert await asyncio.gather(*futures) == [10, 20, "plain", 30]
    assert calls == [[1, 2], [3]]  # a plain job in between splits the run


async def test_a_job_cancelled_before_it_ran_is_skipped(engine: sa.Engine) -> None:
    thread = DbThread(engine)
    ran: list[str] = []
    release, held = _blocker()
    first = thread.run(held)
    skipped = thread.run(lambda conn: ran.append("skipped"))
    after = thread.run(lambda conn: ran.append("after"))
    skipped.cancel()
    release.set()
    await first
    await after
    assert ran == ["after"]


async def test_the_thread_exits_when_idle_and_the_next_job_starts_it_again(
    engine: sa.Engine,
) -> None:
    thread = DbThread(engine, name="idle-test", idle_s=0.05)
    assert await thread.run(lambda conn: 1) == 1
    for _ in range(100):
        if not any(t.name == "idle-test" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.02)
    assert not any(t.name == "idle-test" for t in threading.enumerate())
    assert await thread.run(lambda conn: 2) == 2


async def test_a_driver_error_comes_wrapped_and_the_next_job_runs(engine: sa.Engine) -> None:
    thread = DbThread(engine)

    def broken(conn: Any) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(sa.exc.OperationalError) as failed:
        await thread.run(broken)
    assert not failed.value.connection_invalidated

    # What the failed job left open was rolled back: the next one can BEGIN.
    def again(conn: Any) -> int:
        conn.execute("BEGIN")
        value: int = conn.execute("SELECT 7").fetchone()[0]
        conn.execute("COMMIT")
        return value

    assert await thread.run(again) == 7
