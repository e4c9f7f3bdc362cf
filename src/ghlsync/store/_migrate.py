"""Programmatic Alembic `upgrade head`, safe to run from several processes at once.

The migrations ship inside the package (found with importlib.resources, so an installed
ghlsync migrates without a checkout). Concurrent callers are serialised by the database itself:
a transaction-scoped advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite. The late comers
then find the schema at head and do nothing.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ghlsync.store._engine import begin_immediate

# Any fixed 64-bit number; it names the lock that every ghlsync process agrees on.
_PG_MIGRATE_LOCK = 0x6768_6C73_796E_6301


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there."""
    with importlib.resources.as_file(_migrations_dir()) as folder:
        config = _config(folder)
        with begin_immediate(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATE_LOCK)))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


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
