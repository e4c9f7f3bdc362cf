"""PostgreSQL: the worker's claims on a thread and connection of their own, planned once.

The claim is one statement (`_queue._RAW_CLAIM_NOTING_PG`: the fair order's common table
expressions, the lease, the locations with work), and planning it cost PostgreSQL more than
running it: ~0.8–1.0 ms a claim against ~0.4–0.7 ms. Run from the default executor on
whichever pooled connection came up, it was planned almost every time: psycopg prepares a
statement only at its sixth run on a connection, PostgreSQL plans a prepared statement anew
for its first five runs, and any ROLLBACK on the connection (every SQLAlchemy read ends with
one at check-in) makes psycopg drop all its prepared statements (`DEALLOCATE ALL`). In the
serve benchmark's log, a claim statement ran 6.4 times per PARSE, each run with its own plan.

Here the claims run on one `DbThread` per engine, which keeps its connection while claims keep
coming (`DbThread`'s hold), prepared from the first run (`RawCursor(prepare=True)`) and with the
session settings below, so the statement is planned once per connection and each claim costs
the run alone. Each claim is still one statement in autocommit: its own transaction, exactly
as `claim_noting_work` on an engine runs it.

The settings make that one plan safe to keep, whatever the table held when it was made (a new
store is empty, and this machine's PostgreSQL, with autovacuum off, never has statistics; a
generic plan is costed with arrays of 10 and LIMITs it cannot see): no sequential or bitmap
scans and no hash or merge joins, so every `work_items` row is reached by a seek on the claim
index (its LIMITed reads stop after the rows they need, whatever the estimate) or on the
primary key, as in the custom plans (`tests/test_queue_claim_pg_plan.py` checks the plan made
on an empty store, run on a long backlog); and no JIT, which a generic plan's estimates on a
large queue could cross at every run (~50–250 ms each).

The claims commit without waiting for the WAL flush (`synchronous_commit = off`, this session
only): a lease is seen by every other claimer at once, as before, and only a server crash can
lose it, with whatever else committed in the last few hundred milliseconds. A lost lease
leaves the row as it was before the claim (due, or under an expired lease): it is claimed
again, as when a worker dies holding it, and the first claimer's writes are fenced by its
lease token. Whatever the item commits durably later (its `pending` row before a create, its
settle) waits for the flush, which writes the lease first: the WAL is written in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from ghlsync.engine.queue._queue import Claim, Claimed, claim_noting_on, claim_on
from ghlsync.store._dbthread import DbThread, one_per_engine
from ghlsync.store._raw import RawCursor

_T = TypeVar("_T")
Then = Callable[[Any, list[Claim]], None]  # (DBAPI connection, the claimed items)
_log = logging.getLogger("ghlsync.engine")

PG_SETTINGS = {
    "plan_cache_mode": "force_generic_plan",
    "jit": "off",
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "synchronous_commit": "off",
}


class PgClaimer:
    """The worker's claims for one PostgreSQL engine, on their `DbThread`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._dialect = engine.dialect
        self._thread = DbThread(engine, name="ghlsync-claim", settings=PG_SETTINGS)

    async def claim(
        self,
        worker_id: str,
        locations: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        now: Callable[[], float],
        then: Then | None = None,
    ) -> list[Claim]:
        """`_queue.claim` (`now()` read when the claim runs); `then` as in `claim_noting`."""
        return await self._thread.run(
            self._job(
                lambda raw: claim_on(raw, worker_id, locations, limit, lease_seconds, now()),
                lambda got: got,
                then,
            )
        )

    async def claim_noting(
        self,
        worker_id: str,
        locations: Sequence[str],
        limit: int,
        lease_seconds: float,
        now: Callable[[], float],
        then: Then | None = None,
    ) -> Claimed:
        """`_queue.claim_noting_work` (`now()` read when the claim runs). `then(conn, items)`
        runs right after it, in the same job, on the thread's DBAPI connection (the ledger's
        early reads of the claimed items): the claim is committed by then, so an error of
        `then` is logged and dropped, and the claim answered all the same."""
        return await self._thread.run(
            self._job(
                lambda raw: claim_noting_on(raw, worker_id, locations, limit, lease_seconds, now()),
                lambda got: got.items,
                then,
            )
        )

    def _job(
        self,
        work: Callable[[RawCursor], _T],
        items: Callable[[_T], list[Claim]],
        then: Then | None,
    ) -> Callable[[Any], _T]:
        """`work` on the thread's DBAPI connection, then `then`. A driver error of `work` goes
        back to `DbThread` as the driver raised it: it tells a lost connection (and
        invalidates the pool) and gives the caller SQLAlchemy's error, as for any of its jobs."""
        dialect = self._dialect

        def job(conn: Any) -> _T:
            try:
                got = work(RawCursor(conn, dialect, prepare=True))
            except sa.exc.DBAPIError as exc:
                if isinstance(exc.orig, dialect.loaded_dbapi.Error):
                    raise exc.orig from None
                raise
            if then is not None:
                claimed = items(got)
                if claimed:
                    try:
                        then(conn, claimed)
                    except Exception:  # the claim stands; its items' loads read for themselves
                        _log.warning("reading the claimed items early failed", exc_info=True)
            return got

        return job


_ATTRIBUTE = "_ghlsync_claim_thread"


def for_engine(engine: sa.Engine) -> PgClaimer | None:
    """The engine's claimer on PostgreSQL (one per engine and process); None on SQLite, whose
    claims run on the event loop's own connection."""
    return one_per_engine(engine, _ATTRIBUTE, PgClaimer)
