"""Group commit: every delivery answered after its own transaction committed, failures isolated."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from ghlsync.engine import Delivery, accept
from ghlsync.server._commit import CommitterClosed, GroupCommitter, _transaction
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import inbox, work_items
from tests._db import migrated

scratch = sa.MetaData()
items = sa.Table("committer_items", scratch, sa.Column("n", sa.Integer, primary_key=True))


def _engine(url: str) -> Iterator[sa.Engine]:
    for engine in migrated(url):
        scratch.create_all(engine)
        yield engine


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    yield from _engine(database_url)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    """PostgreSQL only (its tests fail, never skip, with GHLSYNC_REQUIRE_POSTGRES=1)."""
    yield from _engine(postgres_url)


def insert_unless_13(conn: sa.Connection, n: int) -> bool:
    if n == 13:
        raise ValueError("thirteen is refused")
    conn.execute(sa.insert(items).values(n=n))
    return True


def stored(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(items.c.n)).scalars())


@pytest.mark.parametrize("writers", [1, 3])
async def test_concurrent_submits_all_commit_and_a_failure_stays_alone(
    engine: sa.Engine, writers: int
) -> None:
    committer = GroupCommitter(engine, insert_unless_13, writers=writers)
    try:
        results = await asyncio.gather(
            *(committer.submit(n) for n in range(200)), return_exceptions=True
        )
    finally:
        committer.close()
    assert isinstance(results[13], ValueError)
    assert all(r is True for i, r in enumerate(results) if i != 13)
    assert stored(engine) == set(range(200)) - {13}


def delivery(delivery_id: str | None, source_id: str, n: int = 0) -> Delivery:
    return Delivery(
        connection_id="default",
        location_id="loc",
        event="customer.updated",
        delivery_id=delivery_id,
        payload={"customer_id": source_id, "n": n},
        entity_type="contact",
        source_id=source_id,
        source_updated_at=None,
        received_at=time.time(),
    )


async def test_duplicates_in_one_burst_are_accepted_once(engine: sa.Engine) -> None:
    committer = GroupCommitter(engine, accept, lock_order=lambda d: d.source_id)
    burst = [delivery("same", "C-1")] * 5 + [delivery(f"d-{n}", f"C-{n % 3}", n) for n in range(30)]
    try:
        answers = await asyncio.gather(*(committer.submit(d) for d in burst))
    finally:
        committer.close()
    assert answers[:5].count(True) == 1
    assert all(answers[5:])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one() == 31
        generations = conn.execute(sa.select(sa.func.sum(work_items.c.generation))).scalar_one()
    assert generations == 31  # every accepted delivery merged into its entity's row once


async def test_closed_committer_refuses(engine: sa.Engine) -> None:
    committer = GroupCommitter(engine, insert_unless_13)
    assert await committer.submit(1) is True
    committer.close()
    with pytest.raises(CommitterClosed):
        await committer.submit(2)
    assert stored(engine) == {1}


def insert_many_raw(conn: sa.Connection, ns: list[int]) -> list[bool]:
    """A batch on the driver's cursor, as `accept_many` runs (on PostgreSQL: pipelined);
    13 stands for a row the database refuses (a duplicate of 0) when the statement runs."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    try:
        cursor.executemany(
            f"INSERT INTO committer_items (n) VALUES ({mark})",
            [(0 if n == 13 else n,) for n in ns],
        )
    finally:
        cursor.close()
    return [True] * len(ns)


async def test_a_batch_refused_at_commit_is_retried_one_by_one(engine: sa.Engine) -> None:
    # With one writer the batches are taken in order: 0 is in 13's batch or an earlier one,
    # so the duplicate is refused by the database, after the statement was sent (on
    # PostgreSQL in a pipeline: only the commit's sync reports it).
    committer = GroupCommitter(engine, insert_unless_13, accept_many=insert_many_raw)
    try:
        results = await asyncio.gather(
            *(committer.submit(n) for n in range(200)), return_exceptions=True
        )
    finally:
        committer.close()
    assert isinstance(results[13], ValueError)
    assert all(r is True for i, r in enumerate(results) if i != 13)
    assert stored(engine) == set(range(200)) - {13}


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.postgres
def test_a_pipelined_batch_gives_its_connection_back_transactional(
    pg_engine: sa.Engine, fails: bool
) -> None:
    """PostgreSQL: the group commit's pipeline sends BEGIN and COMMIT itself (the connection
    in autocommit meanwhile); committed or failed, the connection goes back to the pool as it
    came, so the next transaction on it is still one: its rows go when it fails."""
    engine = pg_engine
    with contextlib.ExitStack() as stack:
        if fails:
            stack.enter_context(pytest.raises(psycopg.Error))  # raised by the driver
        with _transaction(engine, pipeline=True) as conn:
            insert_many_raw(conn, [0, 1, 13] if fails else [0, 1])
    assert stored(engine) == (set() if fails else {0, 1})
    with pytest.raises(ValueError), begin_immediate(engine) as conn:  # the same connection
        conn.execute(sa.insert(items).values(n=7))
        raise ValueError("rolled back")
    assert stored(engine) == (set() if fails else {0, 1})
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None and not dbapi.autocommit  # type: ignore[attr-defined]
