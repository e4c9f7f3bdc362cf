"""Opening the store: one `create_engine` for SQLite and PostgreSQL, and `begin_immediate`.

SQLite is tuned for many processes sharing one file: WAL (readers never block the writer),
a generous busy timeout (writers queue instead of failing), foreign keys on, and
`synchronous=NORMAL` (durable across application crashes; WAL makes it safe). A new database
file is created 0600 (it holds people's names, emails and phones); SQLite gives its WAL and
shared-memory files the same mode.

Python's sqlite3 driver (before 3.16) only emits BEGIN lazily, before the first write, so a
transaction's reads are not isolated and `BEGIN IMMEDIATE` is impossible to request. We follow
SQLAlchemy's documented recipe: switch the driver's own transaction control off
(`isolation_level = None`) and emit BEGIN ourselves from the `begin` event, choosing
`BEGIN IMMEDIATE` when the connection asks for it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from ghlsync._files import create_private

DEFAULT_DATABASE_URL = "sqlite:///ghlsync.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_POOL_RECYCLE_S = 300
POSTGRES_POOL_SIZE = 16
POSTGRES_MAX_OVERFLOW = 16

# Execution option read by the `begin` hook: which BEGIN flavour SQLite should get.
_BEGIN_OPTION = "ghlsync_sqlite_begin"


def default_database_url() -> str:
    """The store URL from `GHLSYNC_DATABASE_URL`, else a SQLite file in the working directory."""
    return os.environ.get("GHLSYNC_DATABASE_URL") or DEFAULT_DATABASE_URL


def normalize_url(url: str) -> str:
    """Route every PostgreSQL URL spelling to psycopg 3 (`postgres://` is what Heroku & co give)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (relative as written), or None (PostgreSQL, in-memory)."""
    parsed = sa.make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def resolve_sqlite_url(url: str, base: Path) -> str:
    """`url` with a relative SQLite file made absolute against `base` (the config's folder)."""
    path = sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    resolved = sa.make_url(normalize_url(url)).set(database=str((base / path).resolve()))
    return resolved.render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for `url` (SQLite file or PostgreSQL), configured for concurrent processes."""
    url = normalize_url(url)
    if sa.make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    # No `pool_pre_ping`: it costs a `SELECT 1` round trip per checkout (several per synced
    # change). Connections are recycled before server/proxy idle timeouts instead, and a
    # connection that fails as disconnected invalidates the whole pool (SQLAlchemy's default),
    # so after a server restart one operation fails and is retried by its caller (the worker
    # re-claims, a lease expires), not every pooled connection in turn.
    kwargs.setdefault("pool_recycle", POSTGRES_POOL_RECYCLE_S)
    # Room for the worker's concurrent items plus the receiver (store calls run in threads).
    kwargs.setdefault("pool_size", POSTGRES_POOL_SIZE)
    kwargs.setdefault("max_overflow", POSTGRES_MAX_OVERFLOW)
    return sa.create_engine(url, **kwargs)


def is_sqlite(bind: sa.Engine | sa.Connection) -> bool:
    """True when `bind` talks to SQLite (the callers' SQL differs: no SKIP LOCKED there)."""
    return bind.dialect.name == "sqlite"


@contextmanager
def begin_immediate(bind: sa.Engine | sa.Connection) -> Iterator[sa.Connection]:
    """A connection inside a write transaction taken up front (`BEGIN IMMEDIATE` on SQLite).

    On SQLite this makes the transaction the single writer from its first statement, so a
    read-then-write sequence cannot be interleaved by another process and never fails midway
    with "database is locked". On PostgreSQL it is a plain transaction: lock rows with
    `SELECT ... FOR UPDATE` inside it. Commits on success, rolls back on error.
    """
    if isinstance(bind, sa.Connection):
        with _immediate(bind) as conn:
            yield conn
        return
    with bind.connect() as conn, _immediate(conn) as conn_in_tx:
        yield conn_in_tx


def begin_immediate_on(conn: sa.Connection) -> sa.RootTransaction:
    """Begin `conn`'s transaction as `BEGIN IMMEDIATE` (SQLite); the caller ends it.

    For a lock that must outlive one block (held across awaits); prefer `begin_immediate`.
    """
    previous = conn.get_execution_options().get(_BEGIN_OPTION)
    conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
    try:
        return conn.begin()
    finally:
        conn.execution_options(**{_BEGIN_OPTION: previous or "BEGIN"})


@contextmanager
def _immediate(conn: sa.Connection) -> Iterator[sa.Connection]:
    with begin_immediate_on(conn):
        yield conn


def _sqlite_engine(url: str, **kwargs: Any) -> sa.Engine:
    engine = sa.create_engine(url, **kwargs)
    path = sqlite_path(url)
    if path is not None:
        event.listen(engine, "do_connect", lambda *_: _create_private(path))
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _create_private(path: Path) -> None:
    # Before SQLite opens (and so creates) it: an empty file is a valid new database.
    if path.parent.is_dir():
        create_private(path)


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the driver; `_on_sqlite_begin` emits BEGIN instead.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: sa.Connection) -> None:
    """Emit the BEGIN at the driver level: through `exec_driver_sql` it cost ~25 µs of
    SQLAlchemy's statement machinery per transaction (two per synced change in `serve`, the
    claim's and the settle's) for a statement with no parameters and no result. A driver error
    is handled as SQLAlchemy handles one of its statements (wrapped, `OperationalError` for a
    busy lock; a lost connection invalidated)."""
    sql = conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN")
    dbapi = conn.connection.dbapi_connection
    try:
        dbapi.execute(sql)  # type: ignore[union-attr]
    except sqlite3.Error as error:
        conn._handle_dbapi_exception(error, sql, (), None, None)
