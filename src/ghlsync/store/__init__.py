"""The one SQL store: SQLite by default, PostgreSQL by URL.

`create_engine(url)` opens it (tuned for several processes), `migrate(engine)` brings the
schema to head, `begin_immediate(bind)` gives a write transaction taken up front.
"""

from ghlsync.store._engine import (
    begin_immediate,
    create_engine,
    default_database_url,
    is_sqlite,
    normalize_url,
    resolve_sqlite_url,
    sqlite_path,
)
from ghlsync.store._metadata import full_metadata
from ghlsync.store._migrate import (
    StoreVersionError,
    current_revision,
    head_revision,
    migrate,
    schema_state,
)

__all__ = [
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
