"""LISTEN/NOTIFY wake-ups, the SIGTERM drain, the next-due idle time and the status of many
workers; in process, on real databases (fast: no worker processes here)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Worker, accept, claim, next_due, queue_status
from ghlsync.engine._worker import DUE_FRESH_S
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext
from ghlsync.engine.queue._heartbeat import STALE_SECONDS, beat
from ghlsync.engine.queue._inbox import ACCEPTED_FLAG
from ghlsync.engine.queue._notify import CHANNEL, libpq_url, listen_for_work
from ghlsync.mapping import AppConfig, MappedEvent, Mapper
from ghlsync.server._health import health_report
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables import rate_budget
from tests._engine_kit import delivery, send, work_row


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _worker(engine: sa.Engine, flows: object, **kwargs: object) -> Worker:
    config = AppConfig.default()
    return Worker(engine, object(), Mapper(config), config, sync_event=flows, **kwargs)  # type: ignore[arg-type]


def _listener(engine: sa.Engine) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(libpq_url(engine), autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")
    return conn


def test_accept_notifies_once_per_location_per_committed_transaction(
    pg_store: sa.Engine,
) -> None:
    with _listener(pg_store) as listener:
        with begin_immediate(pg_store) as conn:
            for n in range(3):
                accept(conn, delivery(f"c{n}", location="loc1", delivery_id=f"a{n}"))
            accept(conn, delivery("c9", location="loc2", delivery_id="b"))
        with pg_store.connect() as conn, conn.begin() as tx:  # rolled back: nothing to wake for
            accept(conn, delivery("c7", location="loc3", delivery_id="c"))
            tx.rollback()
        with begin_immediate(pg_store) as conn:  # a later transaction notifies again
            accept(conn, delivery("c5", location="loc1", delivery_id="d"))
        notes = [n.payload for n in listener.notifies(timeout=1.0)]
    assert notes == ["loc1", "loc2", "loc1"]


async def test_work_committed_by_another_process_wakes_an_idle_worker(
    pg_store: sa.Engine,
) -> None:
    synced = asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.set()
        return []

    worker = _worker(pg_store, flows)
    worker.poll_interval = worker.idle_poll = 3600  # only a notification can wake it
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)  # listening, found nothing, idle
    other = create_engine(pg_store.url.render_as_string(hide_password=False))
    await asyncio.to_thread(send, other, delivery("c1"))  # no wake() and no shared engine
    other.dispose()
    await asyncio.wait_for(synced.wait(), timeout=20)
    stop.set()
    await asyncio.wait_for(running, timeout=20)
    assert work_row(pg_store, "c1")["status"] == "done"


async def test_drain_finishes_what_it_can_and_releases_the_rest(
    engine_store: sa.Engine,
) -> None:
    stop = asyncio.Event()
    started: list[str] = []

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        started.append(mapped.primary.source_id)
        if mapped.primary.source_id == "slow":
            stop.set()
            await asyncio.sleep(3600)  # never finishes within the bound
        return []

    send(engine_store, delivery("fast"), delivery("slow"))
    worker = _worker(engine_store, flows, concurrency=2, worker_id="drainer")
    await asyncio.wait_for(worker.run(stop, drain_seconds=0.3), timeout=30)

    assert sorted(started) == ["fast", "slow"]
    assert work_row(engine_store, "fast")["status"] == "done"
    slow = work_row(engine_store, "slow")
    assert (slow["status"], slow["attempts"], slow["lease_owner"]) == ("pending", 0, None)
    assert worker.released == 1
    taken = claim(engine_store, "next", None, 5, 30)  # available to others at once
    assert [item.source_id for item in taken] == ["slow"]


def test_next_due_is_the_earliest_retry_or_lease_expiry(engine_store: sa.Engine) -> None:
    clock = FakeClock()
    assert next_due(engine_store) is None
    send(engine_store, delivery("a", received_at=clock.now()))
    (item,) = claim(engine_store, "w", None, 1, 30, clock=clock)
    assert next_due(engine_store) == pytest.approx(clock.now() + 30)  # the lease's expiry
    send(engine_store, delivery("b", received_at=clock.now() + 5))
    assert next_due(engine_store) == pytest.approx(clock.now() + 5)
    assert item.source_id == "a"


async def test_an_idle_worker_sleeps_until_the_next_due_item(pg_store: sa.Engine) -> None:
    clock = FakeClock()
    worker = _worker(pg_store, None, clock=clock)
    worker._listening = True  # as after the LISTEN is in place
    assert await worker._idle_timeout() == worker.idle_poll  # nothing queued
    send(pg_store, delivery("a", received_at=clock.now() + 3))
    clock.advance(DUE_FRESH_S)  # the last read is stale: read again
    assert await worker._idle_timeout() == pytest.approx(3.01 - DUE_FRESH_S)
    send(pg_store, delivery("b", received_at=clock.now() - 1))  # due, yet not taken (budget)
    clock.advance(DUE_FRESH_S)
    assert await worker._idle_timeout() == worker.poll_interval


async def test_a_worker_draining_often_reuses_its_read_of_the_next_due_time(
    pg_store: sa.Engine,
) -> None:
    clock = FakeClock()
    worker = _worker(pg_store, None, clock=clock)
    worker._listening = True
    assert await worker._idle_timeout() == worker.idle_poll  # read: nothing queued
    send(pg_store, delivery("a", received_at=clock.now() + 3))
    clock.advance(DUE_FRESH_S / 2)
    assert await worker._idle_timeout() == worker.idle_poll  # the read is reused
    clock.advance(DUE_FRESH_S / 2)
    assert await worker._idle_timeout() == pytest.approx(3.01 - DUE_FRESH_S)  # read again


async def test_a_listening_worker_is_woken_by_its_own_process_commit_not_its_notify(
    pg_store: sa.Engine,
) -> None:
    synced = asyncio.Event()

    async def flows(ctx: FlowContext, mapped: MappedEvent) -> list[EntityOutcome]:
        synced.set()
        return []

    worker = _worker(pg_store, flows)
    worker.poll_interval = worker.idle_poll = 3600  # only a wake-up can make it claim

    def listening(_location: str | None) -> None:  # a notification wakes nothing here:
        worker._listening = True  # only the commit's checkin can

    worker._on_notify = listening  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)  # listening, found nothing, idle
    assert worker._listening
    await asyncio.to_thread(send, pg_store, delivery("c1"))  # the worker's engine: checkin
    await asyncio.wait_for(synced.wait(), timeout=20)
    stop.set()
    await asyncio.wait_for(running, timeout=20)
    assert work_row(pg_store, "c1")["status"] == "done"


def test_a_worker_passes_over_notifications_of_its_engine_s_connections(
    pg_store: sa.Engine,
) -> None:
    worker = _worker(pg_store, None)
    woken: list[bool] = []
    worker.wake = lambda: woken.append(True)  # type: ignore[method-assign]
    conn = psycopg.connect(libpq_url(pg_store))
    try:
        pid = conn.info.backend_pid
        record = types.SimpleNamespace(info={})
        assert not worker._own_notify(pid)
        worker._on_checkout(conn, record, None)  # before it can commit (and so notify)
        assert worker._own_notify(pid) and not worker._own_notify(pid + 1)
        worker._on_checkin(conn, record)  # accepted nothing: no wake-up
        assert woken == []
        record.info[ACCEPTED_FLAG] = True
        worker._on_checkin(conn, record)  # its commit accepted work: woken here
        assert (woken, record.info) == ([True], {})
        worker._on_close(conn, record)  # its pid may go to another process's backend
        assert not worker._own_notify(pid)
    finally:
        conn.close()


async def test_the_listener_passes_over_notifications_it_is_told_to_skip(
    pg_store: sa.Engine,
) -> None:
    seen: list[str | None] = []
    ready, got = asyncio.Event(), asyncio.Event()
    skipped = psycopg.connect(libpq_url(pg_store), autocommit=True)
    other = psycopg.connect(libpq_url(pg_store), autocommit=True)

    def on_work(location: str | None) -> None:
        seen.append(location)
        if location == "other":
            got.set()

    task = asyncio.create_task(
        listen_for_work(
            libpq_url(pg_store),
            on_work,
            ready=ready,
            skip=lambda pid: pid == skipped.info.backend_pid,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=20)
        skipped.execute("SELECT pg_notify(%s, 'skipped')", (CHANNEL,))
        other.execute("SELECT pg_notify(%s, 'other')", (CHANNEL,))  # delivered after it
        await asyncio.wait_for(got.wait(), timeout=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        skipped.close()
        other.close()
    assert seen == [None, "other"]


def test_status_and_health_show_workers_pauses_and_lag(engine_store: sa.Engine) -> None:
    clock = FakeClock()
    now = clock.now()
    send(engine_store, delivery("a", location="loc1", received_at=now - 40))
    send(engine_store, delivery("b", location="loc2", received_at=now))
    with engine_store.begin() as conn:
        conn.execute(
            sa.insert(rate_budget).values(
                key="loc1", paused_until_ms=int((now + 60) * 1000), daily_remaining=1234
            )
        )
    beat(engine_store, "w-live", now=now, started_at=now, state="running", in_flight=2, processed=7)
    beat(
        engine_store,
        "w-dead",
        now=now - STALE_SECONDS - 1,
        started_at=now - 100,
        state="running",
        in_flight=1,
        processed=3,
    )

    report = queue_status(engine_store, clock=clock)
    loc1 = report.locations["loc1"]
    assert loc1.oldest_pending_age == pytest.approx(40)
    assert loc1.paused_until == pytest.approx(now + 60)
    assert loc1.daily_remaining == 1234
    assert report.locations["loc2"].paused_until is None
    assert report.live_workers() == 1
    assert {w["worker_id"]: w["alive"] for w in report.to_dict()["workers"]} == {
        "w-live": True,
        "w-dead": False,
    }

    healthy, health = health_report(engine_store, clock, None)
    assert healthy
    assert health["workers"] == {"live": 1, "stale": 1}
    assert health["locations"]["loc1"]["pending"] == 1
    assert health["locations"]["loc1"]["lag_seconds"] == pytest.approx(40)
    assert health["locations"]["loc1"]["paused_until"] == pytest.approx(now + 60)


def test_status_cli_json_lists_workers(tmp_path: Path, postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    migrate(engine)
    send(engine, delivery("a", location="loc1", received_at=time.time()))
    beat(
        engine,
        "w1",
        now=time.time(),
        started_at=time.time(),
        state="draining",
        in_flight=0,
        processed=1,
    )
    engine.dispose()
    env = {**os.environ, "GHLSYNC_DATABASE_URL": postgres_url}
    env.pop("GHLSYNC_CONFIG", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ghlsync"), "status", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    data = json.loads(done.stdout)
    assert data["live_workers"] == 1
    assert data["workers"][0]["state"] == "draining"
    assert data["locations"][0]["counts"]["pending"] == 1


async def test_the_listener_reconnects_and_wakes_after_its_connection_dies(
    pg_store: sa.Engine,
) -> None:
    seen: list[str | None] = []
    ready, lost, got = asyncio.Event(), asyncio.Event(), asyncio.Event()
    back = asyncio.Event()

    def on_work(location: str | None) -> None:
        seen.append(location)
        if location == "locX":
            got.set()
        if seen.count(None) == 2:
            back.set()

    task = asyncio.create_task(
        listen_for_work(libpq_url(pg_store), on_work, ready=ready, on_lost=lost.set)
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=20)
        with pg_store.connect() as conn:  # the database drops the listening session
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND query LIKE 'LISTEN%'"
                )
            )
        await asyncio.wait_for(lost.wait(), timeout=20)
        await asyncio.wait_for(back.wait(), timeout=20)  # reconnected, and woke the worker
        await asyncio.to_thread(send, pg_store, delivery("c1", location="locX"))
        await asyncio.wait_for(got.wait(), timeout=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen[:2] == [None, None]
