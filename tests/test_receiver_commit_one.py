"""Group commit of a batch of one: on PostgreSQL through `accept_many` (pipelined, a few
round trips instead of one per statement), retried through `accept` when it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ghlsync.server._commit import GroupCommitter
from ghlsync.store import create_engine, migrate
from tests.test_receiver_commit import insert_many_raw, insert_unless_13, scratch, stored


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    scratch.create_all(engine)
    yield engine
    engine.dispose()


async def test_a_batch_of_one(engine: sa.Engine) -> None:
    calls: list[tuple[str, list[int]]] = []

    def one(conn: sa.Connection, n: int) -> bool:
        calls.append(("accept", [n]))
        return insert_unless_13(conn, n)

    def many(conn: sa.Connection, ns: list[int]) -> list[bool]:
        calls.append(("accept_many", ns))
        if 13 in ns:
            raise ValueError("thirteen is refused")
        return insert_many_raw(conn, ns)

    committer = GroupCommitter(engine, one, accept_many=many)
    try:
        assert await committer.submit(1) is True
        with pytest.raises(ValueError, match="thirteen"):
            await committer.submit(13)
    finally:
        committer.close()
    if engine.dialect.name == "postgresql":
        assert calls == [("accept_many", [1]), ("accept_many", [13]), ("accept", [13])]
    else:  # SQLite: no round trips to save
        assert calls == [("accept", [1]), ("accept", [13])]
    assert stored(engine) == {1}


def test_submits_one_at_a_time_all_commit(engine: sa.Engine) -> None:
    async def run() -> list[bool]:
        committer = GroupCommitter(engine, insert_unless_13, accept_many=insert_many_raw)
        try:
            return [await committer.submit(n) for n in range(20) if n != 13]
        finally:
            committer.close()

    assert asyncio.run(run()) == [True] * 19
    assert stored(engine) == set(range(20)) - {13}
