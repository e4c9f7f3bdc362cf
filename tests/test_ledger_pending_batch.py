"""On SQLite the `mark_pending` rows announced in one turn of the event loop are written in one
transaction, each caller answered only after it committed; a row that fails fails its caller
alone (the others are written again one by one)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.state import _idmap, _ledger
from ghlsync.engine.state._ledger import SqlLedger
from tests._db import migrated


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    yield from migrated(sqlite_url)


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The source ids of each transaction `mark_pending` wrote."""
    seen: list[list[str]] = []
    real = _ledger._write_pending

    def write(engine: sa.Engine, rows: list[dict[str, Any]], conn: Any = None) -> None:
        seen.append([str(r["k_source"]) for r in rows])
        real(engine, rows, conn)

    monkeypatch.setattr(_ledger, "_write_pending", write)
    return seen


def _state(engine: sa.Engine, source_id: str) -> str | None:
    with engine.connect() as conn:
        row = _idmap.get(conn, "loc1", "contact", source_id)
    return None if row is None else row.state


async def test_creates_announced_together_share_one_transaction(
    engine: sa.Engine, transactions: list[list[str]]
) -> None:
    clock = FakeClock()
    ledgers = [SqlLedger(engine, "loc1", clock) for _ in range(5)]

    async def announce(i: int) -> str | None:
        await ledgers[i].mark_pending("contact", f"c{i}", {"email": f"p{i}@x.io"})
        return _state(engine, f"c{i}")  # committed when the call returns

    states = await asyncio.gather(*(announce(i) for i in range(5)))
    assert states == ["pending"] * 5
    assert transactions == [[f"c{i}" for i in range(5)]]
    await ledgers[0].mark_pending("contact", "c9", {"email": "p9@x.io"})  # alone: its own
    assert transactions[1:] == [["c9"]]


async def test_a_row_that_fails_fails_its_caller_alone(
    engine: sa.Engine, transactions: list[list[str]]
) -> None:
    clock = FakeClock()
    ledger = SqlLedger(engine, "loc1", clock)
    bad = ledger.mark_pending("contact", None, {"email": "x@x.io"})  # type: ignore[arg-type]
    answers = await asyncio.gather(
        ledger.mark_pending("contact", "c1", {"email": "a@x.io"}),
        bad,
        ledger.mark_pending("contact", "c2", {"email": "b@x.io"}),
        return_exceptions=True,
    )
    assert answers[0] is None and answers[2] is None
    assert isinstance(answers[1], sa.exc.IntegrityError)
    assert _state(engine, "c1") == _state(engine, "c2") == "pending"
    assert transactions == [["c1", "None", "c2"], ["c1"], ["None"], ["c2"]]
