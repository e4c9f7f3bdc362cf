"""The ledger's batched path on PostgreSQL (`engine/state/_pgbatch.py`): each caller gets its
own answer, a write is durable when it returns, one bad write fails only its caller (as a
`sqlalchemy.exc` error), the same row twice in a batch keeps queue order, and a lost
connection fails the batch and the next call recovers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync.engine.state import _idmap, _pgbatch, _syncstate
from ghlsync.engine.state._ledger import SqlLedger
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.store import create_engine, migrate

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _hold(engine: sa.Engine) -> threading.Event:
    """Queue a job that holds the ledger's writes' thread until the event is set, so that the calls
    made meanwhile are queued together and run as one batch."""
    batch = _pgbatch.for_engine(engine)
    assert batch is not None
    release = threading.Event()
    batch._thread.run(lambda _conn: release.wait(5))
    return release


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Record the size of each batch `PgBatch.<name>` is handed."""
    sizes: list[int] = []
    original = getattr(_pgbatch.PgBatch, name)

    def spied(self: Any, conn: Any, items: list[Any]) -> Any:
        sizes.append(len(items))
        return original(self, conn, items)

    monkeypatch.setattr(_pgbatch.PgBatch, name, spied)
    return sizes


def test_sqlite_has_no_batcher(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        assert _pgbatch.for_engine(engine) is None
    finally:
        engine.dispose()


async def test_loads_of_one_batch_each_get_their_own_row(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledgers = {loc: SqlLedger(engine, loc, SYSTEM_CLOCK) for loc in ("L1", "L2")}
    for loc, ledger in ledgers.items():
        for i in range(5):
            await ledger.confirm("contact", f"c{i}", f"{loc}-G{i}", SyncState(f"h{i}", i, {}))
    await ledgers["L1"].mark_pending("contact", "p", {"email": "p@example.com"})
    sizes = _spy(monkeypatch, "_load_many")

    release = _hold(engine)
    calls = [ledgers[loc].load("contact", f"c{i}") for i in (4, 0, 3) for loc in ("L2", "L1")]
    calls += [ledgers["L1"].load("contact", "missing"), ledgers["L1"].lookup("contact", "p")]
    calls.append(ledgers["L2"].lookup("contact", "c1"))
    gathered = asyncio.gather(*calls)
    release.set()
    answers = await gathered

    assert sizes == [len(calls)]  # one statement for all of them
    for (loc, i), (mapped, state) in zip(
        [(loc, i) for i in (4, 0, 3) for loc in ("L2", "L1")], answers[:6], strict=True
    ):
        assert mapped is not None and mapped.ghl_id == f"{loc}-G{i}"
        assert mapped.source_id == f"c{i}" and mapped.state == "confirmed"
        assert state == SyncState(f"h{i}", i, {})
    assert answers[6] == (None, None)
    pending = answers[7]
    assert pending is not None and pending.state == "pending" and pending.ghl_id is None
    assert pending.pending_body == {"email": "p@example.com"}
    lookup = answers[8]
    assert lookup is not None and lookup.ghl_id == "L2-G1"


async def test_writes_of_one_batch_are_durable_when_each_returns(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = SqlLedger(engine, "L", SYSTEM_CLOCK)
    await ledger.confirm("contact", "old", "G-old", SyncState("h0", 50.0, {"tags": ["a"]}))
    sizes = _spy(monkeypatch, "_write_many")

    release = _hold(engine)
    gathered = asyncio.gather(
        ledger.mark_pending("contact", "new", {"email": "n@example.com"}),
        ledger.confirm("contact", "c1", "G1", SyncState("h1", 10.0, {"body": {"x": 1}})),
        # No source timestamp: the one recorded stays (the COALESCE of the one-row upsert).
        ledger.record("contact", "old", SyncState("h2", None, {"tags": ["b"]})),
    )
    release.set()
    await gathered

    assert sizes == [3]
    with engine.connect() as conn:  # another connection: committed
        new = _idmap.get(conn, "L", "contact", "new")
        c1 = _idmap.get(conn, "L", "contact", "c1")
        c1_state = _syncstate.get(conn, "L", "contact", "c1")
        old_state = _syncstate.get(conn, "L", "contact", "old")
        pending_since = conn.execute(
            sa.text("SELECT pending_since FROM id_map WHERE source_id = 'new'")
        ).scalar_one()
    assert new is not None and new.state == "pending" and new.ghl_id is None
    assert new.pending_body == {"email": "n@example.com"} and pending_since is not None
    assert c1 is not None and (c1.ghl_id, c1.state, c1.pending_body) == ("G1", "confirmed", None)
    assert c1_state == SyncState("h1", 10.0, {"body": {"x": 1}})
    assert old_state == SyncState("h2", 50.0, {"tags": ["b"]})


async def test_the_same_row_twice_in_a_batch_is_written_in_queue_order(
    engine: sa.Engine,
) -> None:
    ledger = SqlLedger(engine, "L", SYSTEM_CLOCK)
    release = _hold(engine)
    gathered = asyncio.gather(
        ledger.mark_pending("contact", "c", {"email": "c@example.com"}),
        ledger.confirm("contact", "c", "G", SyncState("h1", 1.0, {})),
        ledger.record("contact", "c", SyncState("h2", 2.0, {})),
        ledger.record("contact", "c", SyncState("h3", None, {})),
    )
    release.set()
    await gathered
    assert await ledger.load("contact", "c") == (
        _idmap.IdMapRow("contact", "c", "G", "confirmed", None),
        SyncState("h3", 2.0, {}),
    )


async def test_a_bad_write_fails_its_caller_only_as_a_sqlalchemy_error(
    engine: sa.Engine,
) -> None:
    ledger = SqlLedger(engine, "L", SYSTEM_CLOCK)
    release = _hold(engine)
    gathered = asyncio.gather(
        ledger.mark_pending("contact", "ok1", {"n": 1}),
        ledger.mark_pending("contact", "x" * 500, {"n": 2}),  # source_id is VARCHAR(128)
        ledger.confirm("contact", "ok2", "G2", SyncState("h", 1.0, {})),
        return_exceptions=True,
    )
    release.set()
    first, bad, third = await gathered
    assert first is None and third is None
    assert isinstance(bad, sa.exc.DataError)  # what a `Connection` would have raised
    assert (await ledger.lookup("contact", "ok1")) is not None
    mapped, state = await ledger.load("contact", "ok2")
    assert mapped is not None and mapped.ghl_id == "G2" and state is not None
    assert await ledger.lookup("contact", "x" * 500) is None


async def test_a_lost_connection_fails_the_batch_and_the_next_call_recovers(
    engine: sa.Engine,
) -> None:
    ledger = SqlLedger(engine, "L", SYSTEM_CLOCK)
    await ledger.mark_pending("contact", "before", {})  # the thread's connection is pooled now
    killer = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    try:
        with killer.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.commit()
    finally:
        killer.dispose()
    with pytest.raises(sa.exc.OperationalError) as failed:
        await ledger.load("contact", "before")
    assert failed.value.connection_invalidated
    mapped, _ = await ledger.load("contact", "before")  # a fresh connection
    assert mapped is not None and mapped.state == "pending"
    await ledger.confirm("contact", "before", "G", SyncState("h", None, {}))
    assert (await ledger.lookup("contact", "before")) == _idmap.IdMapRow(
        "contact", "before", "G", "confirmed", None
    )


async def test_a_caller_cancelled_before_its_write_ran_writes_nothing(engine: sa.Engine) -> None:
    ledger = SqlLedger(engine, "L", SYSTEM_CLOCK)
    release = _hold(engine)
    write = asyncio.ensure_future(ledger.mark_pending("contact", "gone", {}))
    kept = asyncio.ensure_future(ledger.mark_pending("contact", "kept", {}))
    await asyncio.sleep(0)
    write.cancel()
    release.set()
    await kept
    assert await ledger.lookup("contact", "gone") is None
    assert await ledger.lookup("contact", "kept") is not None


async def test_a_load_does_not_wait_behind_a_write(engine: sa.Engine) -> None:
    """The loads run on a thread and connection of their own: a load is answered while the
    writes' thread is busy (on a busy server a write's commit waits for the flush)."""
    ledger = SqlLedger(engine, "L", SYSTEM_CLOCK)
    await ledger.confirm("contact", "c", "G", SyncState("h", None, {}))
    release = _hold(engine)  # the writes' thread is busy until released
    try:
        write = asyncio.ensure_future(ledger.mark_pending("contact", "new", {}))
        mapped, _ = await asyncio.wait_for(ledger.load("contact", "c"), 2.0)
        assert mapped is not None and mapped.ghl_id == "G"
        assert not write.done()  # queued behind the held job
    finally:
        release.set()
    await write
    assert (await ledger.lookup("contact", "new")) is not None  # answered: committed
