"""The store core: engine tuning, BEGIN IMMEDIATE, and migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import ghlsync.store
from ghlsync.store import (
    _migrate,
    begin_immediate,
    create_engine,
    current_revision,
    default_database_url,
    full_metadata,
    head_revision,
    migrate,
    normalize_url,
)
from ghlsync.store._tables import ghl_connections


def test_exported_members() -> None:
    assert ghlsync.store.__all__ == [
        "StoreVersionError",
        "begin_immediate",
        "create_engine",
        "current_revision",
        "default_database_url",
        "full_metadata",
        "head_revision",
        "is_sqlite",
        "migrate",
        "normalize_url",
        "resolve_sqlite_url",
        "schema_state",
        "sqlite_path",
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///ghlsync.db", "sqlite:///ghlsync.db"),
    ],
)
def test_normalize_url_routes_postgres_to_psycopg(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_default_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GHLSYNC_DATABASE_URL", raising=False)
    assert default_database_url() == "sqlite:///ghlsync.db"
    monkeypatch.setenv("GHLSYNC_DATABASE_URL", "postgresql://x/y")
    assert default_database_url() == "postgresql://x/y"


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": 30000,
        "foreign_keys": 1,
        "synchronous": 1,
    }


def test_begin_immediate_takes_the_write_lock_before_any_write(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    migrate(engine)
    path = sa.make_url(sqlite_url).database
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with begin_immediate(engine) as conn:
        conn.execute(sa.select(ghl_connections.c.key)).all()  # only a read so far
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # released at commit
    other.execute("ROLLBACK")
    other.close()
    engine.dispose()


def test_a_begin_immediate_refused_by_a_busy_store_is_sqlalchemys_operational_error(
    sqlite_url: str,
) -> None:
    """The BEGIN goes to the driver, its errors come out as SQLAlchemy's (what the callers
    that fall back to a thread on a busy lock catch), and the connection is usable after."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    path = sa.make_url(sqlite_url).database
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with engine.connect() as conn:
        conn.connection.dbapi_connection.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
        with (
            pytest.raises(sa.exc.OperationalError, match="locked") as caught,
            begin_immediate(conn),
        ):
            pass
        assert isinstance(caught.value.orig, sqlite3.OperationalError)
        assert "BEGIN IMMEDIATE" in str(caught.value)
        other.execute("ROLLBACK")
        with begin_immediate(conn):
            conn.execute(sa.select(ghl_connections.c.key)).all()
    other.close()
    engine.dispose()


def test_plain_transactions_still_begin_deferred(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    path = sa.make_url(sqlite_url).database
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with begin_immediate(engine):
        pass
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1").scalar()
        other.execute("BEGIN IMMEDIATE")  # a deferred reader does not hold the write lock
        other.execute("ROLLBACK")
    other.close()
    engine.dispose()


def test_begin_immediate_commits_and_rolls_back(database_url: str) -> None:
    engine = create_engine(database_url)
    migrate(engine)
    row = {
        "key": "loc1",
        "user_type": "Location",
        "kind": "oauth",
        "access_token": b"x",
        "updated_at": 1.0,
    }
    with begin_immediate(engine) as conn:
        conn.execute(ghl_connections.insert().values(row))
    with pytest.raises(RuntimeError), begin_immediate(engine) as conn:
        conn.execute(ghl_connections.delete())
        raise RuntimeError("boom")
    with engine.connect() as conn:
        assert conn.execute(sa.select(ghl_connections.c.key)).scalars().all() == ["loc1"]
    engine.dispose()


def test_migrated_schema_matches_metadata(database_url: str) -> None:
    engine = create_engine(database_url)
    assert current_revision(engine) is None
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), full_metadata())
    engine.dispose()
    assert diffs == []


def test_a_locked_sqlite_store_is_migrated_on_a_later_try(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite may answer "database is locked" at once, without its busy timeout, to processes
    opening a new WAL file together (CI: one of three migrating processes failed so)."""
    real = _migrate.begin_immediate
    calls = 0

    def locked_twice(engine: sa.Engine) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise sa.exc.OperationalError(
                "BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")
            )
        return real(engine)

    monkeypatch.setattr(_migrate, "begin_immediate", locked_twice)
    engine = create_engine(sqlite_url)
    try:
        migrate(engine)
        assert calls == 3
        assert current_revision(engine) == head_revision()
        # Another error is not tried again.
        monkeypatch.setattr(_migrate, "begin_immediate", _raises_other)
        with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
            migrate(engine)
    finally:
        engine.dispose()


def _raises_other(engine: sa.Engine) -> Any:
    raise sa.exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("disk I/O error"))


def test_concurrent_migrations_from_several_processes(database_url: str) -> None:
    script = (
        "import sys; from ghlsync.store import create_engine, migrate; "
        "migrate(create_engine(sys.argv[1]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    engine = create_engine(database_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
