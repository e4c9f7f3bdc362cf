"""Which PostgreSQL threads wait for their commits to reach the disk.

The claim thread (`_claim_pg`) and the rate limiter's thread commit asynchronously
(`synchronous_commit = off` in their sessions only): a server crash can lose their last few
hundred milliseconds, which is the same as a worker dying at that point (a lease taken again, a
slot freed early: at worst a 429). The ledger's and the settle's threads keep waiting for the
flush: a `pending` row must be durable before its create goes out, and a settle before it
counts as done. The connections go back to the pool with the server's own setting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.engine.queue import _claim_pg, _settle_pg
from ghlsync.engine.state import _pgbatch
from ghlsync.ghl._ratelimit._sql import SqlRateLimiter
from ghlsync.store._dbthread import HOLD_S, DbThread
from tests._db import migrated

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


def _setting(thread: DbThread) -> str:
    async def read() -> str:
        row = await thread.run(lambda conn: conn.execute("SHOW synchronous_commit").fetchone())
        return str(row[0])

    return asyncio.run(read())


def _threads(engine: sa.Engine) -> dict[str, Any]:
    claimer = _claim_pg.for_engine(engine)
    settle = _settle_pg.for_engine(engine)
    ledger = _pgbatch.for_engine(engine)
    assert claimer is not None and settle is not None and ledger is not None
    return {
        "claim": claimer._thread,
        "limiter": SqlRateLimiter(engine)._thread,
        "settle": settle._thread,
        "ledger": ledger._thread,
    }


def test_claims_and_rate_slots_commit_without_waiting_for_the_flush(engine: sa.Engine) -> None:
    got = {name: _setting(thread) for name, thread in _threads(engine).items()}
    assert got == {"claim": "off", "limiter": "off", "settle": "on", "ledger": "on"}


def test_the_connections_go_back_to_the_pool_waiting_for_the_flush(engine: sa.Engine) -> None:
    threads = _threads(engine)

    async def pid(thread: DbThread) -> int:
        return int(await thread.run(lambda conn: conn.info.backend_pid))

    used = {asyncio.run(pid(threads[name])) for name in ("claim", "limiter")}
    time.sleep(HOLD_S * 6)  # no job came for a while: each thread checked its connection in
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(engine.connect()) for _ in range(engine.pool.checkedin())]
        found = {
            conn.connection.dbapi_connection.info.backend_pid: conn  # type: ignore[union-attr]
            for conn in conns
        }
        assert used <= set(found)
        for backend in used:
            setting = found[backend].exec_driver_sql("SHOW synchronous_commit").scalar()
            assert setting == "on"
