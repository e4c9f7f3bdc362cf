"""The worker's group commit: settles share a transaction, one failure spares the others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from ghlsync.engine.queue._settle import Settler
from ghlsync.store._raw import RawCursor, RawStatement
from ghlsync.store._tables_engine import audit_log
from tests._engine_kit import count


def _write(source_id: str) -> Callable[[sa.Connection], bool]:
    def op(conn: sa.Connection) -> bool:
        conn.execute(
            sa.insert(audit_log).values(
                at=0.0,
                location_id="loc1",
                entity_type="contact",
                source_id=source_id,
                action="updated",
                calls=0,
            )
        )
        return True

    return op


def _boom(conn: sa.Connection) -> bool:
    _write("never")(conn)
    raise ValueError("bad item")


async def test_settles_commit_together_and_a_failure_spares_its_neighbours(
    engine_store: sa.Engine,
) -> None:
    settler = Settler(engine_store)
    results = await asyncio.gather(
        settler.run(_write("a")),
        settler.run(_boom),
        settler.run(_write("b")),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], ValueError)
    with engine_store.connect() as conn:
        written = set(conn.execute(sa.select(audit_log.c.source_id)).scalars())
    assert written == {"a", "b"}  # the failed op's write was rolled back
    assert count(engine_store, audit_log) == 2
    with pytest.raises(ValueError):
        await settler.run(_boom)


async def test_settles_arriving_within_a_few_turns_of_the_loop_share_a_transaction(
    engine_store: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items finish one loop turn apart (as they do when their last answers come in one by
    one): the settle waits a few turns, and all of them commit together."""
    settler = Settler(engine_store)
    batches: list[int] = []
    real = settler._together

    def together(bind: sa.Engine | sa.Connection, batch: list[object]) -> list[bool]:
        batches.append(len(batch))
        return real(bind, batch=batch)  # type: ignore[arg-type]

    monkeypatch.setattr(settler, "_together", together)

    async def later(turns: int, source_id: str) -> bool:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await settler.run(_write(source_id))

    assert await asyncio.gather(*(later(t, f"s{t}") for t in range(3))) == [True] * 3
    assert batches == [3]
    assert count(engine_store, audit_log) == 3


def _write_raw(source_id: str) -> Callable[[sa.Connection], bool]:
    """`_write` at the driver level (as the worker's completions are)."""

    def op(conn: sa.Connection) -> bool:
        RawCursor(conn.connection, conn.dialect).execute(_RAW_AUDIT, {"s": source_id})
        return True

    return op


def _boom_raw(conn: sa.Connection) -> bool:
    _write_raw("never")(conn)
    raise ValueError("bad item")


_RAW_AUDIT = RawStatement(
    sa.insert(audit_log).values(
        at=0.0,
        location_id="loc1",
        entity_type="contact",
        source_id=sa.bindparam("s"),
        action="updated",
        calls=0,
    )
)


async def test_driver_level_settles_share_a_transaction_begun_at_the_driver(
    engine_store: sa.Engine,
) -> None:
    """On SQLite a batch of driver-level settles runs without SQLAlchemy's transaction; with
    one settle that is not, the batch goes the SQLAlchemy way. Either way a failure spares its
    neighbours and each answer comes after its commit."""
    settler = Settler(engine_store)
    assert await settler.run(_write_raw("first"), driver_level=True)  # the loop's connection
    begun: list[object] = []
    sa.event.listen(engine_store, "begin", begun.append)
    results = await asyncio.gather(
        settler.run(_write_raw("a"), driver_level=True),
        settler.run(_boom_raw, driver_level=True),
        settler.run(_write_raw("b"), driver_level=True),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], ValueError)
    sqlite = engine_store.dialect.name == "sqlite"
    assert len(begun) == (0 if sqlite else 4)  # PostgreSQL: together, then one by one
    begun.clear()
    mixed = [settler.run(_write_raw("c"), driver_level=True), settler.run(_write("d"))]
    assert await asyncio.gather(*mixed) == [True, True]
    assert len(begun) == 1
    with engine_store.connect() as conn:
        written = set(conn.execute(sa.select(audit_log.c.source_id)).scalars())
    assert written == {"first", "a", "b", "c", "d"}
