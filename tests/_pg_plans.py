"""The plan PostgreSQL keeps for a prepared statement, read after the store changed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from psycopg import sql as psql


def plan_kept(
    engine: sa.Engine,
    name: str,
    sql: str,
    args: Mapping[str, Any],
    settings: Mapping[str, str],
    meanwhile: Callable[[], None],
) -> str:
    """`EXPLAIN ANALYZE` of `sql` (driver SQL with `%(name)s` or, arrays, `%(name)b` parameters)
    prepared as `name` in a session with `settings`, run once, then run again after
    `meanwhile()` changed the store: the plan made on the first run stays, as in a long-lived
    connection."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)[sb]", sql)))
    prepared = re.sub(r"%\((\w+)\)[sb]", lambda m: f"${names.index(m.group(1)) + 1}", sql)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for setting, value in settings.items():
            conn.exec_driver_sql(f"SET {setting} = {value}")
        conn.exec_driver_sql(f"PREPARE {name} AS " + prepared)
        dbapi = conn.connection.dbapi_connection
        values = psql.SQL(", ").join(psql.Literal(args[n]) for n in names)
        run = psql.SQL("EXECUTE {}({})").format(psql.Identifier(name), values)
        conn.exec_driver_sql(run.as_string(dbapi))
        meanwhile()
        explain = psql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + run
        rows = conn.exec_driver_sql(explain.as_string(dbapi)).all()
    return "\n".join(row[0] for row in rows)
