"""Database fixtures: every store test runs on a real SQLite file and a real PostgreSQL server.

PostgreSQL comes from GHLSYNC_TEST_POSTGRES_URL (default: the local server, database `test`).
Each test gets a fresh database created from it. Without a server the PostgreSQL cases skip
with the reason; with GHLSYNC_REQUIRE_POSTGRES=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ghlsync.store import create_engine, migrate

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    return os.environ.get("GHLSYNC_TEST_POSTGRES_URL", DEFAULT_PG)


def _postgres_unavailable() -> str | None:
    try:
        engine = sa.create_engine(postgres_admin_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no server here"
        return f"PostgreSQL not reachable at {postgres_admin_url()}: {exc.__class__.__name__}"
    return None


_PG_REASON: list[str | None] = []


def require_postgres() -> None:
    """Skip (or fail, in CI) when no PostgreSQL server answers."""
    if not _PG_REASON:
        _PG_REASON.append(_postgres_unavailable())
    reason = _PG_REASON[0]
    if reason is None:
        return
    if os.environ.get("GHLSYNC_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (GHLSYNC_REQUIRE_POSTGRES=1, so this must not skip)")
    pytest.skip(reason)


def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    require_postgres()
    admin = sa.create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"ghlsync_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(postgres_admin_url()).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once for SQLite (a real file) and once for PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ghlsync.db'}"
    else:
        yield from fresh_postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ghlsync.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from fresh_postgres_database()


def migrated(url: str) -> Iterator[sa.Engine]:
    """A migrated store on `url`, disposed afterwards: `yield from migrated(url)` in a fixture."""
    engine = create_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()
