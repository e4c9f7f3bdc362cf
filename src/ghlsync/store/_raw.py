"""Hot statements at the driver level: Core statements compiled once, run on DBAPI cursors.

`Connection.execute` costs SQLAlchemy ~60–90 µs of Python per statement (execution context,
events, result wrapping), a transaction as much again; the statement itself, on SQLite, ~5 µs
(docs/benchmarks.md, "Engine end to end"). The few statements the engine runs for every synced
change are written as Core constructs like every other (one source of the SQL, the schema's
types), compiled once per dialect to the driver's SQL text here, and executed on a pooled
DBAPI connection. What SQLAlchemy would have done around them is kept: bind processors are
applied, a driver error comes out as the same `sqlalchemy.exc` class, and a connection the
error shows disconnected is invalidated (dropped from the pool) as `Connection` does.

SQLite's connections run without the driver's own transaction control (`_engine.py`), so
`transaction()` emits BEGIN (IMMEDIATE) and COMMIT itself; on PostgreSQL the driver begins
implicitly and `commit()` ends it. A `read()` is one statement: on SQLite its own snapshot, on
PostgreSQL the pool's reset ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # positional drivers: the parameters' order
    defaults: dict[str, Any]  # literal values the statement carries (`sa.literal(1)`)
    processors: dict[str, Callable[[Any], Any]]
    # What `args` starts from: the defaults with their processors applied once (a processor
    # converts a value, the same each time); only the parameters given are processed per call.
    processed: dict[str, Any] = field(default_factory=dict)
    ordered: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = None  # `names`' values

    @classmethod
    def of(
        cls,
        sql: str,
        names: tuple[str, ...] | None,
        defaults: dict[str, Any],
        processors: dict[str, Callable[[Any], Any]],
    ) -> _Compiled:
        processed = _processed(dict(defaults), processors, defaults)
        return cls(sql, names, defaults, processors, processed, _ordered(names))


class RawStatement:
    """A Core statement, compiled once per dialect; `args` turns a parameter dict into what
    the driver takes (a tuple in order for `?` placeholders, a dict for `%(name)s`)."""

    __slots__ = ("_by_dialect", "_stmt")

    def __init__(self, stmt: sa.Executable) -> None:
        self._stmt = stmt
        self._by_dialect: dict[str, _Compiled] = {}

    def compiled(self, dialect: sa.Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            c = self._stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
            defaults = {
                name: bind.effective_value
                for bind, name in c.bind_names.items()
                if not bind.required
            }
            names = tuple(c.positiontup) if c.positional else None
            sql, processors = c.string, dict(c._bind_processors)
            if dialect.name == "postgresql" and not c.positional:
                sql = _binary_arrays(sql, c.bind_names, processors)
            found = _Compiled.of(sql, names, defaults, processors)
            self._by_dialect[dialect.name] = found
        return found

    def args(self, dialect: sa.Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL text and the driver's parameters for `params` (the defaults, overridden
        by `params`, each value not None through its bind processor)."""
        c = self.compiled(dialect)
        values = _processed({**c.processed, **params}, c.processors, params)
        if c.ordered is None:
            return c.sql, values
        return c.sql, c.ordered(values)


def _binary_arrays(
    sql: str, binds: Mapping[Any, str], processors: dict[str, Callable[[Any], Any]]
) -> str:
    """psycopg: the array parameters sent in binary (`%(name)b`). In text, psycopg quotes and
    escapes every element in Python (a regular expression per string): ~6 us an array of 5 and
    more for JSON text, which the batched statements bind by the dozen (a settle of 5 items
    binds ~30 arrays). Binary takes no escaping, but an array's elements must be of one Python
    type: a float column's are made floats (a timestamp may come as an int)."""
    for bind, name in binds.items():
        kind = bind.type
        if not isinstance(kind, sa.ARRAY):
            continue
        sql = sql.replace(f"%({name})s", f"%({name})b")
        if isinstance(kind.item_type, sa.Float):
            processors[name] = _as_floats(processors.get(name))
    return sql


def _as_floats(before: Callable[[Any], Any] | None) -> Callable[[Any], list[Any]]:
    """A float array's processor: `before` (if any), then every value a float."""

    def floats(values: Any) -> list[Any]:
        if before is not None:
            values = before(values)
        return [v if v is None or type(v) is float else float(v) for v in values]

    return floats


def _processed(
    values: dict[str, Any], processors: Mapping[str, Callable[[Any], Any]], of: Mapping[str, Any]
) -> dict[str, Any]:
    """`values` with the processor applied to each value of `of`'s names that is not None."""
    for name, process in processors.items():
        if name in of:
            value = of[name]
            if value is not None:
                values[name] = process(value)
    return values


def _ordered(
    names: tuple[str, ...] | None,
) -> Callable[[Mapping[str, Any]], tuple[Any, ...]] | None:
    """A function giving the values of `names`, in order, as a tuple (None: no order)."""
    if names is None:
        return None
    if len(names) == 1:
        return lambda values: (values[names[0]],)
    if not names:
        return lambda values: ()
    return operator.itemgetter(*names)


class RawCursor:
    """A DBAPI cursor that runs `RawStatement`s and turns driver errors into SQLAlchemy's.

    `prepare` (psycopg only): every statement is a server-side prepared statement from its
    first run, not from its sixth (psycopg's `prepare_threshold`), for a connection that is
    kept (`DbThread`), where the statements are few and run often."""

    __slots__ = ("_conn", "_cursor", "_kwargs", "dialect")

    def __init__(self, conn: Any, dialect: sa.Dialect, *, prepare: bool = False) -> None:
        self._conn = conn
        self._cursor = conn.cursor()
        self._kwargs: dict[str, Any] = {"prepare": True} if prepare else {}
        self.dialect = dialect

    def execute(self, stmt: RawStatement, params: Mapping[str, Any]) -> RawCursor:
        sql, args = stmt.args(self.dialect, params)
        try:
            self._cursor.execute(sql, args, **self._kwargs)
        except self.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(self.dialect, sql, args, exc, self._conn, self._cursor) from exc
        return self

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed (an UPDATE's matches)."""
        return int(self._cursor.rowcount)

    def one(self) -> Sequence[Any]:
        row = self._cursor.fetchone()
        if row is None:
            raise sa.exc.NoResultFound("no row was found when one was required")
        return tuple(row)

    def all(self) -> list[Sequence[Any]]:
        return [tuple(row) for row in self._cursor.fetchall()]

    def first(self) -> Sequence[Any] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def run(self, sql: str) -> None:
        """A statement without parameters (BEGIN, COMMIT)."""
        try:
            self._cursor.execute(sql)
        except self.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(self.dialect, sql, (), exc, self._conn, self._cursor) from exc


def wrapped_error(
    dialect: sa.Dialect, sql: str | None, args: Any, exc: Any, conn: Any, cursor: Any
) -> sa.exc.StatementError:
    """`exc`, a driver error, as the `sqlalchemy.exc` class `Connection` would raise; a
    connection it shows lost is invalidated (when `conn` is a pool's, which can be)."""
    return _wrapped(dialect, sql, args, exc, conn, cursor)


def _wrapped(
    dialect: sa.Dialect, sql: str | None, args: Any, exc: Any, conn: Any, cursor: Any
) -> sa.exc.StatementError:
    gone = dialect.is_disconnect(exc, conn, cursor)
    if gone and hasattr(conn, "invalidate"):
        conn.invalidate(exc)
    wrapped: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        sql,
        args,
        exc,
        dialect.loaded_dbapi.Error,
        dialect=dialect,
        connection_invalidated=gone,
    )
    return wrapped


@contextmanager
def transaction(
    engine: sa.Engine, *, immediate: bool = False, conn: Any = None
) -> Iterator[RawCursor]:
    """A write transaction on a pooled DBAPI connection (or `conn`, left open): commits on
    success, rolls back on error. `immediate`: SQLite takes the write lock up front."""
    dialect = engine.dialect
    dbapi = engine.raw_connection() if conn is None else conn
    try:
        cursor = RawCursor(dbapi, dialect)
        sqlite = dialect.name == "sqlite"
        if sqlite:
            cursor.run("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield cursor
            if sqlite:
                cursor.run("COMMIT")
            else:
                try:
                    dbapi.commit()
                except dialect.loaded_dbapi.Error as exc:
                    raise _wrapped(dialect, "COMMIT", (), exc, dbapi, None) from exc
        except BaseException:
            _rollback(dbapi, sqlite)
            raise
    finally:
        if conn is None:
            dbapi.close()


@contextmanager
def driver_transaction(bind: sa.Engine | sa.Connection) -> Iterator[sa.Connection]:
    """SQLite: a connection (`bind`, or one from the engine's pool) inside a write transaction
    taken up front, begun and ended at the driver level (`transaction`), for work that runs
    only driver-level statements on `conn.connection` (`RawCursor`). SQLAlchemy's own
    transaction costs ~40 µs more per transaction; an SQLAlchemy statement inside this one
    would begin one of its own and fail (SQLite refuses a nested BEGIN), never run outside it."""
    with contextlib.ExitStack() as stack:
        conn = bind if isinstance(bind, sa.Connection) else stack.enter_context(bind.connect())
        with transaction(conn.engine, immediate=True, conn=conn.connection.dbapi_connection):
            yield conn


def _rollback(dbapi: Any, sqlite: bool) -> None:
    with contextlib.suppress(Exception):  # the original error is what the caller must see
        if sqlite:
            if dbapi.in_transaction:
                dbapi.execute("ROLLBACK")
        else:
            dbapi.rollback()


@contextmanager
def read(engine: sa.Engine, *, conn: Any = None) -> Iterator[RawCursor]:
    """A cursor for one read statement on a pooled DBAPI connection (or `conn`)."""
    dbapi = engine.raw_connection() if conn is None else conn
    try:
        yield RawCursor(dbapi, engine.dialect)
    finally:
        if conn is None:
            dbapi.close()


def is_busy(exc: BaseException) -> bool:
    """True when `exc` is SQLite saying another connection holds the lock it asked for."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


# SQLite: each event-loop thread's own connection to an engine's file (`loop_sa_connection`)
# with its pool proxy, under (id(engine), thread id): looked up several times per synced change,
# where a WeakKeyDictionary makes a weak reference per lookup. An entry's `Connection` holds its
# engine, so the engine lives while it has one: its entries are closed and dropped when it is
# disposed (`Engine.dispose`, which every owner of an engine calls when done with it), and only
# then can it be collected and its id reused.
_LOOP_CONNECTIONS: dict[tuple[int, int], tuple[sa.Connection, Any]] = {}
_LOOP_LOCK = threading.Lock()
# How long a statement on the loop's own connection waits for another writer of this process
# (the limiter's thread, a settle in a thread) before going to a thread itself: those hold
# the lock for well under a millisecond, and with 0 half the loop's writes went to threads
# (worker alone with the SQL limiter 261-280 changes/s; 523-532/s with 2 ms).
LOOP_BUSY_TIMEOUT_MS = 2


def loop_connection(engine: sa.Engine) -> Any | None:
    """SQLite only (else None): this thread's own connection to `engine`'s file, for the
    few statements worth running on the event loop itself.

    A read in WAL mode never waits for a writer, and a short write that finds the write lock
    free takes ~30 µs, where handing either to a thread costs more than the statement. The
    connection's busy timeout is `LOOP_BUSY_TIMEOUT_MS` (2 ms), so a write that finds the
    lock held longer fails then (`is_busy`) and the caller hands it to a thread, which waits as
    long as the store's busy timeout: the loop never waits long for another writer.

    It is the DBAPI connection under `loop_sa_connection`: one connection for every writer
    on the loop (the ledger, the limiter, the queue's claim and settle), because a commit on
    one connection makes every other connection of the file drop its page cache at its next
    transaction. Sharing it is safe because nobody leaves a transaction open across an
    `await`: a driver-level transaction here runs from BEGIN to COMMIT (or ROLLBACK) without
    yielding, and `on_loop_or_thread` ends the SQLAlchemy one before it returns, so each
    side finds the connection outside a transaction, as it left it. Closed when the engine
    is disposed.
    """
    found = _LOOP_CONNECTIONS.get((id(engine), threading.get_ident()))
    if found is not None:
        dbapi = found[1].dbapi_connection  # None once closed or invalidated
        if dbapi is not None:
            return dbapi
    conn = loop_sa_connection(engine)
    return None if conn is None else conn.connection.dbapi_connection


def loop_sa_connection(engine: sa.Engine) -> sa.Connection | None:
    """SQLite only (else None): this thread's own detached `Connection`, for code written
    against SQLAlchemy (the queue's claim and settle); its busy timeout is
    `LOOP_BUSY_TIMEOUT_MS`. `loop_connection` is its DBAPI connection."""
    key = (id(engine), threading.get_ident())
    found = _LOOP_CONNECTIONS.get(key)
    if found is not None and found[1].dbapi_connection is not None:
        return found[0]
    if engine.dialect.name != "sqlite":
        return None
    conn = engine.connect()
    conn.detach()  # ours for good: its busy timeout never goes back to the pool
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {LOOP_BUSY_TIMEOUT_MS}")
    conn.commit()
    _keep(engine, key, conn)
    return conn


async def on_loop_or_thread(engine: sa.Engine, work: Callable[[Any], _T]) -> _T:
    """`work(bind)` on this loop's own SQLite connection (`loop_sa_connection`), and in a
    thread on `engine` when that is PostgreSQL or another writer holds SQLite's lock.

    `work` must be one transaction that gives up at its first statement when the lock is
    taken (`begin_immediate`), or reads only: then a busy SQLite has done nothing yet, and the
    thread, which waits for the lock, runs it again from the start.
    """
    conn = loop_sa_connection(engine)
    if conn is not None:
        try:
            return work(conn)
        except sa.exc.OperationalError as exc:
            if not is_busy(exc):
                raise
        finally:
            if conn.in_transaction():  # a read leaves its snapshot open: end it
                conn.rollback()
    return await asyncio.to_thread(work, engine)


def _keep(engine: sa.Engine, key: tuple[int, int], conn: sa.Connection) -> None:
    with _LOOP_LOCK:
        if not sa.event.contains(engine, "engine_disposed", _close_all):
            sa.event.listen(engine, "engine_disposed", _close_all)
        _LOOP_CONNECTIONS[key] = (conn, conn.connection)


def _close_all(engine: sa.Engine) -> None:
    """`engine` was disposed: close and forget its loop connections (the next use of the
    engine opens new ones, as it does a new pool)."""
    with _LOOP_LOCK:
        gone = [key for key in _LOOP_CONNECTIONS if key[0] == id(engine)]
        connections = [_LOOP_CONNECTIONS.pop(key)[0] for key in gone]
    for conn in connections:
        # One made in another thread may refuse to close there (the driver's thread check):
        # it is dropped all the same, and closes when collected.
        with contextlib.suppress(Exception):
            conn.close()


def unnest_rows(name: str, columns: Sequence[tuple[str, Any]]) -> Any:
    """PostgreSQL: `unnest(:{name}_{col}::T[], ...) AS {name}(col, ...)`: one row per array element
    (a batch of rows as one bound array per column, for one statement per batch)."""
    arrays = [sa.bindparam(f"{name}_{col}", type_=postgresql.ARRAY(kind)) for col, kind in columns]
    rows = sa.func.unnest(*arrays).table_valued(*(col for col, _ in columns))
    return rows.render_derived(name=name)
