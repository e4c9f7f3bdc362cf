"""Alembic environment: migrates the connection `ghlsync.store.migrate` hands over.

Run through the `alembic` command instead (with a config pointing here), it opens
`GHLSYNC_DATABASE_URL` itself. The target metadata is every table module that exists, so
autogenerate sees the whole store.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from ghlsync.store._engine import create_engine, default_database_url
from ghlsync.store._metadata import full_metadata

target_metadata = full_metadata()


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(
        context.config.get_main_option("sqlalchemy.url") or default_database_url()
    )
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("ghlsync migrations run online only: use `ghlsync.store.migrate`")
_run_online()
