"""The SQL limiter's thread (`DbThread`): order, batches, cancellation, idle exit, errors."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
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


async def test_a_connection_out_while_the_engine_is_disposed_is_closed_not_pooled(
    engine: sa.Engine,
) -> None:
    thread = DbThread(engine)
    started, release = threading.Event(), threading.Event()
    used: list[Any] = []

    def job(conn: Any) -> int:
        used.append(conn)
        started.set()
        release.wait(5)
        return 1

    answer = thread.run(job)
    assert await asyncio.to_thread(started.wait, 5)
    engine.dispose()  # what a caller that did not drain does
    release.set()
    assert await answer == 1  # answered after the connection went back
    with pytest.raises(sqlite3.ProgrammingError):  # closed: not left in the disposed pool
        used[0].execute("SELECT 1")


@pytest.mark.postgres
async def test_the_settings_of_a_thread_apply_to_its_statements_and_not_to_the_pool(
    postgres_url: str,
) -> None:
    """The limiter's planner settings (`DbThread(settings=...)`) are its own: set on the
    connection it checked out, restored before the pool hands that connection to anyone else."""
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        thread = DbThread(engine, settings={"plan_cache_mode": "force_generic_plan"})

        def show(conn: Any) -> str:
            return str(conn.execute("SHOW plan_cache_mode").fetchone()[0])

        assert await thread.run(show) == "force_generic_plan"
        with engine.connect() as conn:  # the pool's one connection, the thread's a moment ago
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"
        assert await thread.run(show) == "force_generic_plan"
    finally:
        engine.dispose()


@pytest.mark.postgres
async def test_a_connection_kept_between_batches_is_closed_when_the_engine_is_disposed(
    postgres_url: str,
) -> None:
    """A thread with settings keeps its connection between batches (`HOLD_S`): disposed
    meanwhile, the next job runs on a connection of the new pool, with the settings, and the
    old one is closed, not left out of any pool."""
    engine = create_engine(postgres_url)
    try:
        thread = DbThread(engine, settings={"plan_cache_mode": "force_generic_plan"})
        used: list[Any] = []

        def show(conn: Any) -> str:
            used.append(conn)
            return str(conn.execute("SHOW plan_cache_mode").fetchone()[0])

        assert await thread.run(show) == "force_generic_plan"
        engine.dispose()  # while the thread still keeps the connection
        assert await thread.run(show) == "force_generic_plan"
        assert used[1] is not used[0]
        assert used[0].closed
    finally:
        engine.dispose()
