"""Group commit: many deliveries, one durable transaction, each answered after the commit.

Answering 202 only after a commit costs a transaction per answer: a BEGIN IMMEDIATE and a WAL
append on SQLite, a round trip and a WAL flush on PostgreSQL. Taking every delivery that
arrived meanwhile into the same transaction spreads that cost over the batch. Each
delivery still goes through `accept()` and is answered only after the transaction holding it
has committed. If a batch fails, its deliveries are retried one transaction each, so one bad
delivery cannot fail its neighbours.

SQLite gets one writer thread (it has one writer at a time anyway); PostgreSQL gets a few, so
one batch's round trips overlap another's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from ghlsync.engine.queue._inbox import ACCEPTED_FLAG
from ghlsync.store import begin_immediate
from ghlsync.store._raw import transaction

T = TypeVar("T")
AcceptFn = Callable[[sa.Connection, T], bool]
AcceptManyFn = Callable[[sa.Connection, list[T]], list[bool]]

DEFAULT_MAX_BATCH = 512

_Item = tuple[T, asyncio.AbstractEventLoop, "asyncio.Future[bool]"]
_Answer = tuple[_Item[T], bool | None, BaseException | None]


class CommitterClosed(RuntimeError):
    """The committer was closed; no more deliveries are taken."""


class GroupCommitter(Generic[T]):
    """Runs `accept(conn, item)` for submitted items in shared transactions.

    `writers` threads take batches from one queue. With more than one (PostgreSQL: their
    round trips overlap), each batch runs in `lock_order` (a stable sort, so items of one
    entity keep their arrival order) and concurrent batches cannot deadlock on row locks.

    With `accept_many` (same answers as `accept` applied to each item in order), a batch takes
    one call of it instead of one `accept` per item (on PostgreSQL a batch of one as well);
    a batch that fails is still retried one item per transaction, through `accept`.
    """

    def __init__(
        self,
        engine: sa.Engine,
        accept: AcceptFn[T],
        *,
        writers: int = 1,
        lock_order: Callable[[T], Any] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        accept_many: AcceptManyFn[T] | None = None,
    ) -> None:
        self._engine = engine
        self._accept = accept
        self._accept_many = accept_many
        self._writers = writers
        self._lock_order = lock_order
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item[T] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    async def submit(self, item: T) -> bool:
        """`accept`'s answer for `item`, once the transaction holding it has committed."""
        if self._closed:
            raise CommitterClosed("the receiver is shutting down")
        if not self._threads:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put((item, loop, future))
        return await future

    def close(self) -> None:
        """Finish what was submitted, then stop the writer threads."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
        self._refuse_leftovers()

    def _start(self) -> None:
        with self._lock:
            if self._threads or self._closed:
                return
            for n in range(self._writers):
                thread = threading.Thread(
                    target=self._run, name=f"ghlsync-group-commit-{n}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _refuse_leftovers(self) -> None:
        # A submit racing with close can land after the writers left; answer it, never hang.
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not None:
                _resolve(entry, None, CommitterClosed("the receiver is shutting down"))

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                if self._lock_order is not None:
                    order = self._lock_order
                    batch.sort(key=lambda entry: order(entry[0]))
                try:
                    answers = self._commit(batch)
                finally:
                    self._done(batch)
                _resolve_all(answers)
            if stop:
                return

    def _done(self, batch: list[_Item[T]]) -> None:
        """Called in the writer thread once `batch` is committed (or refused)."""

    def _next_batch(self) -> tuple[list[_Item[T]], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return batch, True
            batch.append(more)
        return batch, False

    def _commit(self, batch: list[_Item[T]], *, retry: bool = False) -> list[_Answer[T]]:
        """Commit `batch` (a failed batch again one item per transaction, through `accept`);
        the answers."""
        many = self._accept_many is not None and not retry and (len(batch) > 1 or self._piped)
        try:
            with _transaction(self._engine, pipeline=many) as conn:
                if self._accept_many is not None and many:
                    answers = self._accept_many(conn, [item for item, _, _ in batch])
                else:
                    answers = [self._accept(conn, item) for item, _, _ in batch]
        except Exception as exc:
            if len(batch) == 1 and not many:
                return [(batch[0], None, exc)]
            return [answer for one in batch for answer in self._commit([one], retry=True)]
        return [(entry, answer, None) for entry, answer in zip(batch, answers, strict=True)]

    @property
    def _piped(self) -> bool:
        """PostgreSQL: `accept_many` in a pipeline waits for 3-4 round trips where `accept`
        waits for one per statement (6-8), so it takes a batch of one delivery as well."""
        return self._engine.dialect.name == "postgresql"


@contextlib.contextmanager
def _transaction(engine: sa.Engine, *, pipeline: bool) -> Iterator[sa.Connection]:
    """`begin_immediate(engine)`; with `pipeline` on PostgreSQL, inside a psycopg pipeline.

    A writer thread gives up the GIL at each round trip and, with the event loop busy, waits
    up to a switch interval (5 ms) to get it back, so a batch's time went by its round trips
    more than by their work. In pipeline mode a statement is only sent; the thread waits
    where it reads a result (the inbox insert's RETURNING, with the lock of the rows to merge
    into when they are known; the work insert's RETURNING) and at the end, where the last
    Sync takes the updates, the links, the NOTIFY and the COMMIT with it: 3 waits for new
    entities, 2 for a merge-heavy batch (`accept_many`). The transaction's BEGIN and COMMIT
    are statements of the pipeline (the connection in autocommit meanwhile): psycopg's own
    transaction control syncs after its BEGIN and again at its COMMIT, two more waits per
    batch, which at a low rate (a batch of one delivery each) were 2 of its 5. The commit
    still returns only once PostgreSQL has committed (the last Sync reads the COMMIT's
    result), and an error in any queued statement fails the commit (and so the batch,
    which is retried one item at a time; the failed transaction is rolled back first).
    Only for `accept_many`, which runs on the driver's cursor: SQLAlchemy's results (those
    of `accept`) expect each statement's result at once.
    """
    if not pipeline or engine.dialect.name != "postgresql":
        with begin_immediate(engine) as conn:
            yield conn
        return
    with engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        dbapi.autocommit = True
        try:
            # SQLAlchemy's transaction is bookkeeping here (`notify_work` keys on it); its
            # commit finds the driver idle, ours having committed, and sends nothing.
            with begin_immediate(conn), dbapi.pipeline():
                dbapi.execute("BEGIN")
                yield conn
                dbapi.execute("COMMIT")
        finally:
            _restore_autocommit(conn, dbapi)


def _restore_autocommit(conn: sa.Connection, dbapi: Any) -> None:
    """Give the connection back to the pool as it came (transactions begun by the driver);
    one that cannot be (the server gone) is dropped, never handed on in autocommit."""
    try:
        dbapi.rollback()  # nothing to send unless a transaction was left open
        dbapi.autocommit = False
    except Exception:
        conn.invalidate()


def _resolve(entry: _Item[T], answer: bool | None, error: BaseException | None) -> None:
    _, loop, future = entry
    # The loop may have closed while we were committing; then nobody waits any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, future, answer, error)


def _resolve_all(answers: list[_Answer[T]]) -> None:
    """Answer a committed batch with one wake-up of each waiting loop, not one per delivery.

    Each `call_soon_threadsafe` writes to the loop's self-pipe and takes a loop turn; with a
    batch of a few hundred deliveries those wake-ups cost the loop more than the answers.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[_Answer[T]]] = {}
    for answer in answers:
        by_loop.setdefault(answer[0][1], []).append(answer)
    for loop, some in by_loop.items():
        # The loop may have closed while we were committing; then nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_many, some)


def _settle_many(answers: list[_Answer[T]]) -> None:
    for (_, _, future), answer, error in answers:
        _settle(future, answer, error)


def _settle(future: asyncio.Future[bool], answer: bool | None, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone); the commit stands
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert answer is not None
        future.set_result(answer)


INLINE_BUSY_TIMEOUT_MS = 10


class LoopCommitter(GroupCommitter[T]):
    """SQLite: the event loop commits the batch itself, when the write lock is free.

    On SQLite a commit in WAL mode is a short local write, and one writer thread buys no
    overlap, only handoffs: each batch crossed to the writer thread and each answer back,
    and the two threads took turns at the GIL, so the receiver spent its time waiting
    rather than working. Here the deliveries submitted during one turn of the loop are
    committed in one transaction by a callback that runs on the loop right after it (the
    loop is busy for that transaction; requests arriving meanwhile form the next batch), and
    each is answered after that commit, as before.

    Only while the write lock is free: the loop's own connection waits at most
    `INLINE_BUSY_TIMEOUT_MS` for it. When another writer holds it (a worker, another
    process) or the batch fails, the batch goes to the writer thread of `GroupCommitter`,
    which waits as long as the store's busy timeout and retries a failed batch one item at a
    time; the loop never blocks on someone else's transaction.

    On the loop, `accept_many` takes every batch inside a transaction of the driver's
    connection (`_commit_here`): it must run its statements on that connection's cursor,
    as `ghlsync.engine.accept_many` does, not through SQLAlchemy.
    """

    def __init__(
        self,
        engine: sa.Engine,
        accept: AcceptFn[T],
        *,
        on_accepted: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(engine, accept, **kwargs)
        # The loop's connection never goes back to the pool, so the pool's checkin (which
        # wakes an in-process worker when a connection that accepted work comes back) never
        # sees it: after its commits, the same signal is given here.
        self._on_accepted = on_accepted
        self._pending: list[_Item[T]] = []
        self._flushing = False
        self._conn: sa.Connection | None = None
        self._in_thread = 0  # items handed to the writer thread and not yet committed

    async def submit(self, item: T) -> bool:
        if self._closed:
            raise CommitterClosed("the receiver is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((item, loop, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return await future

    def close(self) -> None:
        super().close()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _flush(self) -> None:
        self._flushing = False
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        if self._pending:
            self._flushing = True
            batch[0][1].call_soon(self._flush)
        if self._lock_order is not None:
            order = self._lock_order
            batch.sort(key=lambda entry: order(entry[0]))
        if self._in_thread:
            # Earlier deliveries wait in the thread: these go after them, so each entity's
            # deliveries still merge in arrival order (and the loop does not wait for a lock
            # the thread holds).
            self._hand_over(batch)
            return
        try:
            answers = self._commit_here([item for item, _, _ in batch])
        except Exception:
            self._hand_over(batch)  # the lock was taken, or the batch failed: the thread retries
            return
        accepted = self._conn is not None and self._conn.info.pop(ACCEPTED_FLAG, False)
        if accepted and self._on_accepted is not None:
            self._on_accepted()
        for (_, _, future), answer in zip(batch, answers, strict=True):
            if not future.done():  # a cancelled request's commit stands
                future.set_result(answer)

    def _commit_here(self, items: list[T]) -> list[bool]:
        """The batch's answers, committed: through `accept_many` (a batch of one as well) in
        a transaction begun and committed on the driver's connection.

        SQLAlchemy's transaction cost a batch more than its statements: its BEGIN IMMEDIATE
        is a whole statement execution (context, events, result) and its commit adds its
        bookkeeping, about a third of the commit path at the ~10 deliveries a batch holds
        under load. `accept_many` runs on the driver's cursor, so it needs none of it; and
        for a batch of one it takes 3-4 driver statements where `accept` takes 4-5 through
        SQLAlchemy. Without `accept_many` the batch runs through `accept` in SQLAlchemy's
        transaction, as in the writer thread.
        """
        conn = self._connection()
        if self._accept_many is None:
            with begin_immediate(conn):
                return [self._accept(conn, item) for item in items]
        with transaction(self._engine, immediate=True, conn=conn.connection):
            return self._accept_many(conn, items)

    def _connection(self) -> sa.Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._engine.connect()
            self._conn.detach()  # its short busy timeout never goes back to the pool
            self._conn.exec_driver_sql(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
            self._conn.commit()
        return self._conn

    def _hand_over(self, batch: list[_Item[T]]) -> None:
        if self._closed:
            for entry in batch:
                _resolve(entry, None, CommitterClosed("the receiver is shutting down"))
            return
        if not self._threads:
            self._start()
        with self._lock:
            self._in_thread += len(batch)
        for entry in batch:
            self._queue.put(entry)

    def _done(self, batch: list[_Item[T]]) -> None:
        with self._lock:
            self._in_thread -= len(batch)
