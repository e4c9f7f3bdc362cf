"""The worker's group commit: settles share a transaction, one failure spares the others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from ghlsync.engine.queue._settle import Settler
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
