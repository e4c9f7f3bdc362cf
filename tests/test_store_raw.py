"""The driver-level path of the ledger (`ghlsync.store._raw`): same rows as SQLAlchemy's,
same errors, and on SQLite a write that meets another writer's lock waits in a thread, never
on the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync.engine.state import _idmap, _syncstate
from ghlsync.engine.state._ledger import SqlLedger
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.store import _raw as raw
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_sync import id_map


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


async def test_ledger_writes_read_back_through_sqlalchemy(engine: sa.Engine) -> None:
    ledger = SqlLedger(engine, "loc", SYSTEM_CLOCK)
    assert await ledger.load("contact", "c1") == (None, None)
    await ledger.mark_pending("contact", "c1", {"email": "a@example.com"})
    mapped, state = await ledger.load("contact", "c1")
    assert mapped is not None and mapped.state == "pending" and mapped.ghl_id is None
    assert mapped.pending_body == {"email": "a@example.com"} and state is None

    synced = SyncState("h1", 100.0, {"body": {"email": "a@example.com"}})
    await ledger.confirm("contact", "c1", "G1", synced)
    # A write without a source timestamp keeps the one recorded (the COALESCE survives).
    await ledger.record("contact", "c1", SyncState("h2", None, {"tags": ["x"]}))
    with engine.connect() as conn:
        row = _idmap.get(conn, "loc", "contact", "c1")
        state = _syncstate.get(conn, "loc", "contact", "c1")
    assert row is not None and (row.ghl_id, row.state, row.pending_body) == (
        "G1",
        "confirmed",
        None,
    )
    assert state == SyncState("h2", 100.0, {"tags": ["x"]})
    assert (await ledger.lookup("contact", "c1")) == row
    assert await ledger.load("contact", "c1") == (row, state)
    assert await ledger.lookup("contact", "other") is None


def test_driver_errors_come_out_as_sqlalchemys(engine: sa.Engine) -> None:
    insert = raw.RawStatement(
        sa.insert(id_map).values(
            location_id="loc",
            entity_type="contact",
            source_id=sa.bindparam("s"),
            state="confirmed",
            updated_at=1.0,
        )
    )
    with raw.transaction(engine, immediate=True) as cursor:
        cursor.execute(insert, {"s": "dup"})
    with pytest.raises(sa.exc.IntegrityError), raw.transaction(engine) as cursor:
        cursor.execute(insert, {"s": "fresh"})
        cursor.execute(insert, {"s": "dup"})
    # The failed transaction was rolled back whole, and the pooled connection still works.
    with engine.connect() as conn:
        ids = conn.execute(sa.select(id_map.c.source_id)).scalars().all()
    assert ids == ["dup"]
    with raw.read(engine) as cursor:
        assert cursor.execute(_idmap.RAW_GET, _idmap.key_params("loc", "contact", "dup")).one()


def test_each_thread_has_its_own_loop_connection(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    migrate(engine)
    mine = raw.loop_connection(engine)
    assert mine is not None and raw.loop_connection(engine) is mine
    theirs: list[object] = []
    thread = threading.Thread(target=lambda: theirs.append(raw.loop_connection(engine)))
    thread.start()
    thread.join()
    assert theirs[0] is not None and theirs[0] is not mine
    assert mine.execute("PRAGMA busy_timeout").fetchone() == (raw.LOOP_BUSY_TIMEOUT_MS,)
    engine.dispose()


def test_disposing_the_engine_closes_its_loop_connections(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    migrate(engine)
    first = raw.loop_connection(engine)
    assert first is not None
    engine.dispose()  # the loop connection is detached from the pool: dispose alone misses it
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        first.execute("SELECT 1")
    again = raw.loop_connection(engine)  # the engine still works: a new connection
    assert again is not None and again is not first
    assert again.execute("SELECT count(*) FROM id_map").fetchone() == (0,)
    engine.dispose()
    engine.dispose()  # a second dispose finds nothing to close
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        again.execute("SELECT 1")


def test_postgresql_has_no_loop_connection(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    assert raw.loop_connection(engine) is None
    engine.dispose()


async def test_a_write_meeting_another_writer_waits_in_a_thread(sqlite_url: str) -> None:
    """Another connection holds SQLite's write lock for 0.5 s: the confirm still lands (after
    the lock is released), and the event loop kept running meanwhile."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    ledger = SqlLedger(engine, "loc", SYSTEM_CLOCK)
    await ledger.load("contact", "warm")  # the loop's connection exists before the lock
    held = threading.Event()

    def hold_lock() -> None:
        with begin_immediate(engine) as conn:
            conn.execute(sa.text("SELECT 1"))
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    held.wait(5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    await ledger.confirm("contact", "c1", "G1", SyncState("h", 1.0, {}))
    waited = time.monotonic() - started
    ticker.cancel()
    holder.join()
    assert waited >= 0.3  # it did wait for the lock ...
    assert ticks >= 10  # ... without holding the loop
    mapped, state = await ledger.load("contact", "c1")
    assert mapped is not None and mapped.ghl_id == "G1" and state is not None
    engine.dispose()


async def test_on_loop_or_thread_runs_here_unless_the_lock_is_taken(sqlite_url: str) -> None:
    """A transaction on the loop's own connection while SQLite's write lock is free; in a
    thread (which waits for the lock) when another connection holds it; reads leave no
    snapshot open on the loop's connection."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    ran_in: list[int] = []

    def write(bind: sa.Engine | sa.Connection) -> int:
        ran_in.append(threading.get_ident())
        with begin_immediate(bind) as conn:
            conn.execute(
                sa.insert(id_map).values(
                    location_id="loc",
                    entity_type="contact",
                    source_id=f"s{len(ran_in)}",
                    state="confirmed",
                    updated_at=1.0,
                )
            )
        return len(ran_in)

    loop_thread = threading.get_ident()
    assert await raw.on_loop_or_thread(engine, write) == 1
    assert ran_in == [loop_thread]

    held = threading.Event()

    def hold_lock() -> None:
        with begin_immediate(engine) as conn:
            conn.execute(sa.text("SELECT 1"))
            held.set()
            time.sleep(0.3)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    held.wait(5)
    assert await raw.on_loop_or_thread(engine, write) == 3  # tried here, then in a thread
    holder.join()
    assert ran_in[1] == loop_thread and ran_in[2] != loop_thread

    def count(bind: sa.Engine | sa.Connection) -> int:
        assert isinstance(bind, sa.Connection)
        return len(bind.execute(sa.select(id_map.c.source_id)).all())

    assert await raw.on_loop_or_thread(engine, count) == 2
    conn = raw.loop_sa_connection(engine)
    assert conn is not None and not conn.in_transaction()
    engine.dispose()


async def test_the_loops_writers_share_one_connection(sqlite_url: str) -> None:
    """The driver-level writers (ledger, limiter) and the SQLAlchemy ones (claim, settle) of one
    loop use one connection, each finding it outside a transaction; a replaced (invalidated)
    SQLAlchemy connection takes the driver-level one with it."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    conn = raw.loop_sa_connection(engine)
    assert conn is not None
    assert raw.loop_connection(engine) is conn.connection.dbapi_connection
    params = _idmap.put_params(
        "loc", "contact", "c1", ghl_id="g1", state="confirmed", pending_body=None, now=1.0
    )
    with raw.transaction(engine, immediate=True, conn=raw.loop_connection(engine)) as cursor:
        cursor.execute(_idmap.RAW_UPSERT["sqlite"], params)

    def count(bind: sa.Engine | sa.Connection) -> int:
        assert isinstance(bind, sa.Connection)
        with begin_immediate(bind):
            return len(bind.execute(sa.select(id_map.c.source_id)).all())

    assert await raw.on_loop_or_thread(engine, count) == 1
    assert not conn.in_transaction() and not conn.connection.dbapi_connection.in_transaction
    conn.invalidate()
    fresh = raw.loop_sa_connection(engine)
    assert fresh is not None and fresh is not conn
    assert raw.loop_connection(engine) is fresh.connection.dbapi_connection
    engine.dispose()


def test_a_driver_transaction_commits_rolls_back_and_refuses_sqlalchemy_inside(
    sqlite_url: str,
) -> None:
    """`driver_transaction` (SQLite): the write lock from its BEGIN on, committed at the end,
    rolled back on an error; an SQLAlchemy statement inside fails instead of running in a
    transaction of its own."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    path = sa.make_url(sqlite_url).database
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    insert = raw.RawStatement(
        sa.insert(id_map).values(
            location_id="loc",
            entity_type="contact",
            source_id=sa.bindparam("s"),
            state="pending",
            updated_at=0.0,
        )
    )
    with raw.driver_transaction(engine) as conn:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        raw.RawCursor(conn.connection, conn.dialect).execute(insert, {"s": "kept"})
    with pytest.raises(ValueError), raw.driver_transaction(engine) as conn:
        raw.RawCursor(conn.connection, conn.dialect).execute(insert, {"s": "dropped"})
        raise ValueError("undo")
    sqlalchemy_insert = sa.insert(id_map).values(
        location_id="loc",
        entity_type="contact",
        source_id="sqlalchemy",
        state="pending",
        updated_at=0.0,
    )
    with pytest.raises(sa.exc.OperationalError), raw.driver_transaction(engine) as conn:
        conn.execute(sqlalchemy_insert)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.select(id_map.c.source_id)).scalars())
    assert ids == {"kept"}
    other.close()
    engine.dispose()


def test_postgresql_arrays_go_in_binary_a_float_arrays_ints_as_floats(postgres_url: str) -> None:
    """PostgreSQL: array parameters are sent in binary (psycopg's text arrays quote and escape
    each element in Python); a float array holding ints (a timestamp that came as an int)
    goes as floats: binary arrays take one Python type."""
    rows = raw.unnest_rows(
        "r", [("at", sa.Float), ("name", sa.String), ("n", sa.BigInteger), ("on", sa.Boolean)]
    )
    stmt = raw.RawStatement(sa.select(rows.c.at, rows.c.name, rows.c.n, rows.c.on))
    engine = create_engine(postgres_url)
    try:
        sql, _ = stmt.args(engine.dialect, {})
        assert "%(r_at)b" in sql and "%(r_name)b" in sql and ")s" not in sql
        given = {
            "r_at": [1_700_000_000, 1.5, None],
            "r_name": ['a "quoted" \\ name é', None, ""],
            "r_n": [1, 2**40, None],
            "r_on": [True, None, False],
        }
        with raw.read(engine) as cursor:
            got = cursor.execute(stmt, given).all()
        assert got == [
            (1_700_000_000.0, 'a "quoted" \\ name é', 1, True),
            (1.5, None, 2**40, None),
            (None, "", None, False),
        ]
        assert isinstance(got[0][0], float)
    finally:
        engine.dispose()
