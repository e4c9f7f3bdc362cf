"""PostgreSQL: the worker reads its claimed items' ID-map rows and sync states early
(`PgBatch.preload`); the first `load` of a key takes that answer, unless this process wrote
the key since (then it reads again)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.state import _pgbatch
from ghlsync.engine.state._ledger import SqlLedger
from ghlsync.engine.state._syncstate import SyncState
from tests._db import migrated

pytestmark = pytest.mark.postgres
KEY = ("loc1", "contact", "c1")


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


def _counting_reads(batch: _pgbatch.PgBatch) -> list[int]:
    reads: list[int] = []
    real = batch._load_many

    def counted(conn: Any, keys: list[Any]) -> Any:
        reads.append(len(keys))
        return real(conn, keys)

    batch._load_many = counted  # type: ignore[method-assign]
    return reads


async def test_a_load_takes_the_early_answer_once(engine: sa.Engine) -> None:
    ledger = SqlLedger(engine, "loc1", FakeClock())
    await ledger.mark_pending("contact", "c1", {"email": "ann@x.io"})
    batch = _pgbatch.for_engine(engine)
    assert batch is not None
    reads = _counting_reads(batch)
    batch.preload([KEY, ("loc1", "contact", "c2")])
    row, state = await ledger.load("contact", "c1")
    assert row is not None and row.state == "pending" and state is None
    assert reads == [2]  # both keys in the early read; the load read nothing more
    await ledger.load("contact", "c1")
    assert reads == [2, 1]  # the second load reads anew
    batch.forget_early([("loc1", "contact", "c2")])
    assert not batch._early


async def test_a_write_of_this_process_makes_the_load_read_again(engine: sa.Engine) -> None:
    clock = FakeClock()
    ledger = SqlLedger(engine, "loc1", clock)
    batch = _pgbatch.for_engine(engine)
    assert batch is not None
    batch.preload([KEY])
    await ledger.mark_pending("contact", "c1", {"email": "ann@x.io"})  # after the early read
    row, _ = await ledger.load("contact", "c1")
    assert row is not None and row.state == "pending"  # not the early "nothing there"
    batch.preload([KEY])
    await ledger.confirm("contact", "c1", "g1", SyncState("h", 1.0, {}))
    row, state = await ledger.load("contact", "c1")
    assert row is not None and (row.state, row.ghl_id) == ("confirmed", "g1")
    assert state is not None and state.content_hash == "h"
    batch.preload([KEY])
    await ledger.forget("contact", "c1")
    assert await ledger.load("contact", "c1") == (None, None)


async def test_a_failed_early_read_fails_its_load_or_is_dropped_quietly(
    engine: sa.Engine,
) -> None:
    """(Warnings are errors here: an early read's error nobody loads must not be one.)"""
    batch = _pgbatch.for_engine(engine)
    assert batch is not None

    def broken(conn: Any, keys: list[Any]) -> Any:
        raise RuntimeError("the store went away")

    batch._load_many = broken  # type: ignore[method-assign]
    batch.preload([KEY])
    with pytest.raises(RuntimeError):
        await batch.load(KEY)
    batch.preload([KEY])
    await asyncio.wait([batch._early[KEY]], timeout=10)  # failed, and nobody loads it
    batch.forget_early([KEY])
    assert not batch._early
