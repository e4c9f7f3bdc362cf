"""Group commit for the worker's queue writes: many items settled in one transaction.

Each finished item must mark its work row (complete, retry, dead letter) and write its audit
lines. One transaction per item would cap a SQLite worker at its commit rate; instead every
settle that arrives while a commit is running, or within a few turns of the event loop before
it starts (`LINGER_TURNS`), joins it. If a shared transaction
fails, its operations are retried one transaction each, so one bad item cannot fail its
neighbours. Each caller is answered only after the transaction holding its write committed.

On PostgreSQL a completion also given as data (`Completion`) skips the shared transaction: it
is written with the other completions queued meanwhile in one statement (`_settle_pg`), one
round trip where the transaction took four or more.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import sqlalchemy as sa

from ghlsync.engine.queue import _settle_pg
from ghlsync.engine.queue._settle_pg import Completion
from ghlsync.store._engine import begin_immediate
from ghlsync.store._raw import driver_transaction, on_loop_or_thread

SettleOp = Callable[[sa.Connection], bool]
LINGER_TURNS = 3
_Entry = tuple[SettleOp, "asyncio.Future[bool]", bool]  # the op, its answer, driver level


class Settler:
    """Runs settle operations in shared write transactions: on SQLite on the event loop's own
    connection while the write lock is free (a short local write costs less than the hand-off
    to a thread), else in a thread, which waits for the lock."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._pg = _settle_pg.for_engine(engine)
        self._sqlite = engine.dialect.name == "sqlite"
        self._waiting: list[_Entry] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(
        self, op: SettleOp, completion: Completion | None = None, *, driver_level: bool = False
    ) -> bool:
        """Run `op(conn)` in a committed transaction shared with other settles; its answer.

        `completion`: the same settle as data, when it is a completion; on PostgreSQL that is
        written instead of running `op` (one statement for many, `_settle_pg`).
        `driver_level`: `op` runs only driver-level statements (`store._raw`); on SQLite a
        batch of such ops shares a transaction begun at the driver (`driver_transaction`)."""
        if completion is not None and self._pg is not None:
            return await self._pg.complete(completion)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((op, future, driver_level))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        # A few turns of the event loop first: the items finishing meanwhile join this
        # transaction (serve shape, new customers: 0.54 -> 0.27 settle transactions per
        # change with 3 turns). An idle loop turns in microseconds, so a lone item is not
        # held back.
        for _ in range(LINGER_TURNS):
            await asyncio.sleep(0)
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                answers = await on_loop_or_thread(
                    self._engine, functools.partial(self._together, batch=batch)
                )
            except Exception:
                await self._one_by_one(batch)
                continue
            for (_, future, _), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    def _together(self, bind: sa.Engine | sa.Connection, batch: list[_Entry]) -> list[bool]:
        driver = self._sqlite and all(driver_level for _, _, driver_level in batch)
        with driver_transaction(bind) if driver else begin_immediate(bind) as conn:
            return [op(conn) for op, _, _ in batch]

    async def _one_by_one(self, batch: list[_Entry]) -> None:
        for entry in batch:
            _, future, _ = entry
            try:
                answer = await asyncio.to_thread(self._together, self._engine, [entry])
            except Exception as error:
                if not future.done():
                    future.set_exception(error)
                continue
            if not future.done():
                future.set_result(answer[0])
