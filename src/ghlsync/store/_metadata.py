"""The store's complete `MetaData`: the foundation tables plus every table module that exists.

Areas add tables in their own modules (`_tables_engine.py`, `_tables_sync.py`) on the shared
`metadata`; importing them registers their tables. A module that is absent is skipped, but one
that exists and fails to import is a real error and is raised.
"""

from __future__ import annotations

import importlib
import importlib.util

import sqlalchemy as sa

from ghlsync.store._tables import metadata

TABLE_MODULES = (
    "ghlsync.store._tables_engine",
    "ghlsync.store._tables_sync",
    "ghlsync.store._tables_locations",
    "ghlsync.store._tables_twoway",
    "ghlsync.store._tables_backfill",
    "ghlsync.store._tables_console",
    "ghlsync.store._tables_reconcile",
)


def full_metadata() -> sa.MetaData:
    """`metadata` after importing every table module present in this installation."""
    for name in TABLE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return metadata
