"""Programmatic Alembic `upgrade head`, safe to run from several processes at once.

The migrations ship inside the package (found with importlib.resources, so an installed
ghlsync migrates without a checkout). Concurrent callers are serialised by the database itself:
a transaction-scoped advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite. The late comers
then find the schema at head and do nothing.

A store already at a revision this installation does not ship (written by a newer ghlsync) is
never touched: `migrate` raises `StoreVersionError` instead of guessing.
"""

from __future__ import annotations

import importlib.resources
import time
from importlib.resources.abc import Traversable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ghlsync.store._engine import begin_immediate
from ghlsync.store._raw import is_busy

__all__ = [
    "StoreVersionError",
    "current_revision",
    "head_revision",
    "known_revisions",
    "migrate",
    "schema_state",
]

AHEAD = "ahead"
BEHIND = "behind"
CURRENT = "current"
EMPTY = "empty"

# Any fixed 64-bit number; it names the lock that every ghlsync process agrees on.
_PG_MIGRATE_LOCK = 0x6768_6C73_796E_6301


class StoreVersionError(Exception):
    """The store's schema was written by a newer ghlsync than this one."""

    @classmethod
    def newer(cls, revision: str) -> StoreVersionError:
        """The error for a store at `revision`, which this installation does not ship."""
        return cls(
            f"the store is at schema revision {revision}, written by a newer ghlsync than this "
            f"one (which knows up to {head_revision()}); upgrade ghlsync, or point "
            "database_url at another store"
        )


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there.

    Raises `StoreVersionError` when the store is at a revision this installation does not know.
    On SQLite a "database is locked" that escapes the busy timeout (seen once with processes
    migrating a new file together) is tried again, `_LOCKED_TRIES` times in all: the
    migration's transaction was rolled back, so a later attempt starts clean.
    """
    for attempt in range(1, _LOCKED_TRIES + 1):
        try:
            _migrate(engine)
            return
        except sa.exc.OperationalError as exc:
            if not is_busy(exc) or attempt == _LOCKED_TRIES:
                raise
            time.sleep(0.1 * attempt)


_LOCKED_TRIES = 4


def _migrate(engine: sa.Engine) -> None:
    with importlib.resources.as_file(_migrations_dir()) as folder:
        config = _config(folder)
        with begin_immediate(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATE_LOCK)))
            _refuse_unknown(MigrationContext.configure(conn).get_current_revision())
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


def schema_state(engine: sa.Engine) -> str:
    """`empty` (no ghlsync schema), `behind`, `current`, or `ahead` (a newer ghlsync's)."""
    revision = current_revision(engine)
    if revision is None:
        return EMPTY
    if revision not in known_revisions():
        return AHEAD
    return CURRENT if revision == head_revision() else BEHIND


def known_revisions() -> set[str]:
    """Every revision shipped with this installation."""
    with importlib.resources.as_file(_migrations_dir()) as folder:
        script = ScriptDirectory.from_config(_config(folder))
        return {rev.revision for rev in script.walk_revisions()}


def _refuse_unknown(revision: str | None) -> None:
    if revision is not None and revision not in known_revisions():
        raise StoreVersionError.newer(revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this installation."""
    with importlib.resources.as_file(_migrations_dir()) as folder:
        return ScriptDirectory.from_config(_config(folder)).get_current_head()


def _migrations_dir() -> Traversable:
    return importlib.resources.files("ghlsync.store") / "migrations"


def _config(folder: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(folder))
    return config
