"""`DbThread`: one thread that runs its owner's hot statements on a raw DBAPI connection.

Used by the SQL rate limiter (one per limiter) and by the ledger on PostgreSQL (one per engine,
`ghlsync.engine.state._pgbatch`). Why not `asyncio.to_thread` and a SQLAlchemy transaction per
statement: that costs about 0.1 ms of CPU per statement in SQLAlchemy alone, plus an executor
hand-off and a loop wake-up each, several times per request or per synced change. Here the
event loop queues a job (a function of the DBAPI connection) and gets a future; the thread
takes every job queued since it last looked (a batch), runs them in order, one after the
other, on one pooled connection checked out for the batch and checked in after it (so
`engine.dispose()`, `pool_recycle` and invalidation apply as to any other connection; one out
while the engine is disposed is closed, not left in the old pool), and answers the whole batch
with one `call_soon_threadsafe` per event loop. A job whose caller was cancelled before it
started is skipped, as an executor skips a cancelled call. Items queued one after the other
for the same *bulk* function (`run_bulk`) are handed to it together, so it can answer them in
one round trip (the limiter's takes of several keys, the ledger's loads of several entities).

PostgreSQL connections run in autocommit for the batch (each statement its own transaction;
jobs that need more open one themselves), with the owner's `settings` (planner settings for
its statements alone) set at checkout and the connection's own values put back before it goes
back to the pool; SQLite ones are left as the engine's connect hook
made them (`isolation_level = None`: a job emits its own BEGIN and COMMIT), and whatever a
failed job left open is rolled back. A driver error reaches the caller as the
`sqlalchemy.exc.DBAPIError` subclass a `Connection` would raise; when it says the connection
is gone, the connection is invalidated with the rest of the pool, as SQLAlchemy does, and the
next job checks out a fresh one: the caller's retry is the one it always had.

Jobs reach the thread once per turn of the event loop: what the loop's callbacks queue in one
turn goes over as one batch at its end (`call_soon`). Handing each job over at once woke the
thread for the first one alone, and the tasks an answer wakes together (they usually queue
their next jobs in the same turn) were split again; at 16 items in flight on PostgreSQL about
half of the statements carried one job.

The thread exits after `IDLE_S` with nothing to do and is started again by the next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.pool import PoolProxiedConnection

from ghlsync.store._raw import wrapped_error

T = TypeVar("T")
Item = TypeVar("Item")  # an item of a bulk
Result = TypeVar("Result")  # what one statement of a bulk returns
Answer = TypeVar("Answer")  # what one item of a bulk is answered
IDLE_S = 1.0  # the thread exits after this long without a job
HOLD_S = 0.05  # a thread with settings keeps its connection this long between batches

# A bulk runs several queued items in one go: (connection, items) -> one result per item.
Bulk = Callable[[Any, list[Any]], list[T]]
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Bulk[Any], Any]
_Answer = tuple["asyncio.Future[Any]", bool, Any]  # (future, ok, result or exception)


def _alone(conn: Any, jobs: list[Callable[[Any], Any]]) -> list[Any]:
    return [job(conn) for job in jobs]


class DbThread:
    """Runs jobs (functions of a DBAPI connection) in order, in one thread, in batches."""

    def __init__(
        self,
        engine: sa.Engine,
        name: str = "ghlsync-limiter",
        idle_s: float = IDLE_S,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """`settings`: PostgreSQL parameters (`SET name = value`) for this thread's statements
        only: set when the connection is checked out, restored before it is checked in."""
        self._engine = engine
        self._name = name
        self._idle_s = idle_s
        self._pg = engine.dialect.name == "postgresql"
        self._jobs: queue.SimpleQueue[list[_Job]] = queue.SimpleQueue()
        # Per event loop, the jobs it queued this turn (handed over at the turn's end).
        self._turn: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._guard = threading.Lock()
        self._running = False
        self._pool = engine.pool  # the one the thread's connection came from
        self._settings = dict(settings or {}) if self._pg else {}
        self._restore: list[str] = []  # the checked-out connection's own values of them
        self._held: PoolProxiedConnection | None = None  # kept between batches (settings)

    def run(self, job: Callable[[Any], T]) -> asyncio.Future[T]:
        """Queue `job`; the future has what it returned or raised (from the running loop)."""
        return self._queue(_alone, job)

    def run_bulk(self, bulk: Bulk[T], item: Any) -> asyncio.Future[T]:
        """Queue `item` for `bulk`, which gets it with the items queued right after it for
        the same bulk (one call, one round trip); if it raises, each of them fails so."""
        return self._queue(bulk, item)

    def _queue(self, bulk: Bulk[Any], item: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        turn = self._turn.get(loop)
        if turn is None:
            turn = self._turn[loop] = []
            loop.call_soon(self._hand_over, loop)
        turn.append((loop, future, bulk, item))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """At the end of the loop's turn: give the thread what the turn queued, as one."""
        self._jobs.put(self._turn.pop(loop))
        # Read after the put: a thread on its way out sees the jobs, or we see it gone.
        if not self._running:
            with self._guard:
                if not self._running:
                    self._running = True
                    threading.Thread(target=self._serve, name=self._name, daemon=True).start()

    def _serve(self) -> None:
        try:
            while self._serve_batch():
                pass
        except BaseException:  # a bug of ours: let the next job start a new thread
            self._release()
            with self._guard:
                self._running = False
            raise

    def _serve_batch(self) -> bool:
        """Run what is queued (waiting up to the idle time for it); False: time to exit.

        A thread with settings keeps its connection between batches while they keep coming
        (`HOLD_S`), so it sets them once per burst of work, not for every batch."""
        try:
            batch = self._jobs.get(timeout=HOLD_S if self._held is not None else self._idle_s)
        except queue.Empty:
            if self._held is not None:
                self._release()
                return True
            with self._guard:
                if self._jobs.empty():
                    self._running = False
                    return False
            return True
        with contextlib.suppress(queue.Empty):
            while True:
                batch.extend(self._jobs.get_nowait())
        self._answer(self._run_batch(batch))
        return True

    def _run_batch(self, batch: list[_Job]) -> dict[asyncio.AbstractEventLoop, list[_Answer]]:
        answers: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        conn = self._held
        self._held = None
        if conn is not None and self._engine.pool is not self._pool:
            self._checkin(conn)  # the engine was disposed: a connection of the new pool
            conn = None
        try:
            for queued in _groups(batch):
                group = [job for job in queued if not job[1].cancelled()]
                if not group:
                    continue
                bulk = group[0][2]
                try:
                    if conn is None:
                        conn = self._checkout()
                    results = bulk(conn.dbapi_connection, [job[3] for job in group])
                    done = [(job, True, result) for job, result in zip(group, results, strict=True)]
                except Exception as exc:
                    error, conn = self._failed(conn, exc)
                    done = [(job, False, error) for job in group]
                for (loop, future, _, _), ok, value in done:
                    answers.setdefault(loop, []).append((future, ok, value))
        finally:
            if conn is not None and self._settings and conn.is_valid:
                self._held = conn
            elif conn is not None:
                self._checkin(conn)
        return answers

    def _release(self) -> None:
        """Check the connection kept between batches back in."""
        conn, self._held = self._held, None
        if conn is not None:
            self._checkin(conn)

    def _checkout(self) -> PoolProxiedConnection:
        self._pool = self._engine.pool
        conn = self._engine.raw_connection()
        if self._pg:
            conn.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        if self._settings:
            try:
                self._restore = _set(conn.dbapi_connection, self._settings)
            except self._engine.dialect.loaded_dbapi.Error as exc:
                conn.invalidate(exc)  # dropped: nothing of ours goes back to the pool
                conn.close()
                raise wrapped_error(self._engine.dialect, None, None, exc, None, None) from exc
        return conn

    def _checkin(self, conn: PoolProxiedConnection) -> None:
        if self._settings and conn.is_valid:
            try:
                _set(conn.dbapi_connection, dict(zip(self._settings, self._restore, strict=True)))
            except Exception as exc:  # never back in the pool with our settings: dropped
                conn.invalidate(exc)
        if self._pg and conn.is_valid:
            with contextlib.suppress(Exception):  # a broken connection is closed all the same
                conn.dbapi_connection.autocommit = False  # type: ignore[union-attr]
        if self._engine.pool is not self._pool and conn.is_valid:
            # The engine was disposed meanwhile (its owner did not drain the limiter first):
            # back in the old pool, nobody would ever close this connection.
            conn.detach()
        conn.close()

    def _failed(
        self, conn: PoolProxiedConnection | None, exc: Exception
    ) -> tuple[Exception, PoolProxiedConnection | None]:
        """The error to give the caller, and the connection to go on with (None: a new one)."""
        if conn is None:
            return exc, None  # checkout errors come wrapped already
        dialect = self._engine.dialect
        dbapi_error = dialect.loaded_dbapi.Error
        if not isinstance(exc, dbapi_error):
            self._rollback(conn)
            return exc, conn  # a bug: as it is
        gone = dialect.is_disconnect(exc, conn.dbapi_connection, None)
        if gone:
            # What `Connection` does on a disconnect: every connection opened before now is
            # recycled on its next checkout, and this one is dropped.
            self._engine.pool._invalidate(conn, exc)  # also checks it in
        else:
            self._rollback(conn)
        error = sa.exc.DBAPIError.instance(
            None,
            None,
            exc,
            dbapi_error,
            hide_parameters=self._engine.hide_parameters,
            connection_invalidated=gone,
            dialect=dialect,
        )
        return error, None if gone else conn

    @staticmethod
    def _rollback(conn: PoolProxiedConnection) -> None:
        """End what a failed job left open (SQLite), so the next job can BEGIN."""
        with contextlib.suppress(Exception):
            conn.dbapi_connection.rollback()  # type: ignore[union-attr]

    @staticmethod
    def _answer(answers: dict[asyncio.AbstractEventLoop, list[_Answer]]) -> None:
        for loop, batch in answers.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_deliver, batch)


_ONE_PER_ENGINE = threading.Lock()


def one_per_engine(engine: sa.Engine, attribute: str, make: Callable[[sa.Engine], T]) -> T | None:
    """On PostgreSQL, the engine's one `make(engine)` (made once per engine and process, then
    kept on the engine as `attribute`); None on SQLite, whose hot statements run on the event
    loop's own connection.

    Kept on the engine itself rather than in a weak-keyed registry: the object's thread holds
    the engine, so a registry entry would keep it alive for good, where this is a cycle the
    collector frees with the engine."""
    found: T | None = getattr(engine, attribute, None)
    if found is not None or engine.dialect.name != "postgresql":
        return found
    with _ONE_PER_ENGINE:
        found = getattr(engine, attribute, None)
        if found is None:
            found = make(engine)
            setattr(engine, attribute, found)
    return found


def _set(conn: Any, settings: Mapping[str, str]) -> list[str]:
    """Set `settings` on the session (one round trip); their values before, in order."""
    names = list(settings)
    reads = ", ".join("current_setting(%s), set_config(%s, %s, false)" for _ in names)
    args = [arg for name in names for arg in (name, name, settings[name])]
    row = conn.execute(f"SELECT {reads}", args).fetchone()
    return [row[2 * i] for i in range(len(names))]


def _groups(batch: list[_Job]) -> list[list[_Job]]:
    """Consecutive jobs of one bulk together; plain jobs (`run`) each alone."""
    groups: list[list[_Job]] = []
    for job in batch:
        if groups and job[2] is not _alone and job[2] == groups[-1][0][2]:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def _deliver(batch: list[_Answer]) -> None:
    for future, ok, value in batch:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


@dataclass(frozen=True, slots=True)
class Failed:
    """One caller's error in a bulk that went on without it: the bulk answers it with this
    and the caller raises `error` (`raise_failed`)."""

    error: BaseException


def raise_failed(outcome: T | Failed) -> T:
    """`outcome`, unless it is one caller's error in a bulk: then that error is raised."""
    if isinstance(outcome, Failed):
        raise outcome.error
    return outcome


def split_runs(
    batch: Sequence[Item], keys_of: Callable[[Item], Iterable[Hashable]]
) -> list[list[int]]:
    """`batch` in statements for `write_runs` (lists of indexes, in order): an item with a key
    (`keys_of`: the rows it upserts) the current statement already has starts the next one,
    since an upsert cannot touch a row twice in one statement."""
    runs: list[list[int]] = [[]]
    seen: set[Hashable] = set()
    for i, item in enumerate(batch):
        keys = set(keys_of(item))
        if not seen.isdisjoint(keys):
            runs.append([])
            seen.clear()
        runs[-1].append(i)
        seen.update(keys)
    return [run for run in runs if run]


def write_runs(
    dialect: sa.Dialect,
    conn: Any,
    batch: Sequence[Item],
    runs: list[list[int]],
    write: Callable[[Any, list[Item]], Result],
    answer: Callable[[Result, Item], Answer],
    unanswered: Answer,
) -> list[Answer | Failed]:
    """Write a bulk's items one statement per run (lists of indexes into `batch`, in order),
    each item answered from its statement's result (`answer`). A run whose statement fails is
    written again one item at a time, so only the item at fault fails (`Failed`), the others
    go on; a lost connection is raised, and `DbThread` fails every caller of the bulk."""
    outcomes: list[Answer | Failed] = [unanswered] * len(batch)
    for run in runs:
        try:
            result = write(conn, [batch[i] for i in run])
        except dialect.loaded_dbapi.Error as exc:
            if len(run) == 1:
                outcomes[run[0]] = _failed(dialect, conn, exc)
                continue
            for i in run:  # which one was it: each on its own
                try:
                    outcomes[i] = answer(write(conn, [batch[i]]), batch[i])
                except dialect.loaded_dbapi.Error as alone:
                    outcomes[i] = _failed(dialect, conn, alone)
            continue
        for i in run:
            outcomes[i] = answer(result, batch[i])
    return outcomes


def _failed(dialect: sa.Dialect, conn: Any, exc: Any) -> Failed:
    """This item's error for its caller; a lost connection is raised instead (the whole bulk
    fails and the pool is invalidated)."""
    if dialect.is_disconnect(exc, conn, None):
        raise exc
    return Failed(wrapped_error(dialect, None, None, exc, conn, None))
