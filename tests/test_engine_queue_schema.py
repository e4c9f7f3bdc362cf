"""Migration 0002 creates exactly the tables `store/_tables_engine.py` declares."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ghlsync.store import full_metadata
from ghlsync.store._tables_engine import audit_log, dead_letters, inbox, work_items

ENGINE_TABLES = {t.name for t in (inbox, work_items, dead_letters, audit_log)}


def test_migration_matches_the_engine_tables(engine_store: sa.Engine) -> None:
    with engine_store.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, full_metadata())
    engine_diff = [d for d in diff if ENGINE_TABLES & _tables_named(d)]
    assert engine_diff == []
    assert set(sa.inspect(engine_store).get_table_names()) >= ENGINE_TABLES


def _tables_named(item: object) -> set[str]:
    """Table names an autogenerate diff entry touches (entries are tuples or lists of them)."""
    found: set[str] = set()
    stack = [item]
    while stack:
        current = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend(current)
        name = getattr(current, "name", None) if isinstance(current, sa.Table) else None
        table = getattr(current, "table", None)
        if isinstance(name, str):
            found.add(name)
        if isinstance(table, sa.Table):
            found.add(table.name)
        if isinstance(current, str) and current in ENGINE_TABLES:
            found.add(current)
    return found
