"""SqlRateLimiter's hot statements find `rate_slots` rows by the primary key (key, slot), never
by reading the table: a busy worker runs one per request or so, and on PostgreSQL a key with
1,000 slots made each take read 1,000 rows to update 2 (the planner costs a TID scan above a
small table's sequential scan)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import sql as psql

from ghlsync.ghl._ratelimit import _sql
from ghlsync.ghl._ratelimit._policy import MAX_SLOTS
from ghlsync.store._raw import RawStatement
from ghlsync.store._tables import rate_budget, rate_slots
from tests._db import migrated

NOW = 10**12


def _fill(engine: sa.Engine, keys: dict[str, int], *, analyze: bool = True) -> None:
    """`keys`: slots per key, the first ten of each held, the rest free; then statistics
    (unless not `analyze`: a new store, or a server without autovacuum, has none)."""
    with engine.begin() as conn:
        for key, slots in keys.items():
            conn.execute(
                sa.insert(rate_budget),
                {"key": key, "max": slots, "interval_ms": 1000, "remaining": slots // 2},
            )
            rows = [{"key": key, "slot": i, "free_at_ms": NOW + (i < 10)} for i in range(slots)]
            conn.execute(sa.insert(rate_slots), rows)
    if analyze and engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE rate_slots")
            conn.exec_driver_sql("ANALYZE rate_budget")


def _plan(engine: sa.Engine, statement: sa.Executable, params: dict[str, Any]) -> str:
    """The plan of `statement` as the limiter sends it (driver SQL and arguments); on
    PostgreSQL as run (`EXPLAIN ANALYZE`, rolled back), with how often each node ran."""
    sql, args = RawStatement(statement).args(engine.dialect, params)
    pg = engine.dialect.name == "postgresql"
    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " if pg else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:  # not committed: rolled back
        rows = conn.exec_driver_sql(explain + sql, args).all()
    return "\n".join(str(row[-1]) for row in rows)


def _read_whole(plan: str) -> list[str]:
    """The plan's sequential scans of `rate_slots` that ran."""
    lines = plan.splitlines()
    return [line for line in lines if "Seq Scan on rate_slots" in line and "never" not in line]


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    yield from migrated(sqlite_url)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "keys",
    [{"big": MAX_SLOTS}, {"big": MAX_SLOTS, "a": 100, "b": 100}, {f"k{i}": 100 for i in range(20)}],
)
def test_the_postgresql_take_and_its_frees_read_rate_slots_by_the_primary_key(
    pg_engine: sa.Engine, keys: dict[str, int]
) -> None:
    _fill(pg_engine, keys)
    key = next(iter(keys))
    frees = {"k": [key, key], "s": [3, 4], "at": [NOW, NOW]}
    for takes in ({"ks": [key], "ns": [2]}, {"ks": list(keys), "ns": [1] * len(keys)}):
        params = {**takes, **frees, "now": NOW, "hold": NOW + 5_000}
        plan = _plan(pg_engine, _sql._build_write(), params)
        taken = sum(takes["ns"])  # type: ignore[arg-type]
        assert plan.startswith(f"Update on rate_slots (actual rows={taken} "), plan
        assert _read_whole(plan) == [], plan
    flush = {
        "ks": [],
        "ns": [],
        **frees,
        "now": 0,
        "hold": 0,
    }  # frees alone (`_HotStatements.free`)
    assert _read_whole(_plan(pg_engine, _sql._build_write(), flush)) == []


def _generic_plans(
    engine: sa.Engine, statement: sa.Executable, runs: list[dict[str, Any]]
) -> list[str]:
    """The plans of `statement` prepared once on a session with the limiter thread's settings
    (`_sql.PG_SETTINGS`) and run with each of `runs` (`EXPLAIN ANALYZE EXECUTE`, rolled back)."""
    sql, _ = RawStatement(statement).args(engine.dialect, runs[0])
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)[sb]", number, sql)
    plans = []
    with engine.connect() as conn:  # not committed: rolled back; the session ends with it
        for name, value in _sql.PG_SETTINGS.items():
            conn.exec_driver_sql(f"SET {name} = {value}")
        conn.exec_driver_sql("PREPARE take AS " + prepared)
        dbapi = conn.connection.dbapi_connection
        for params in runs:
            args = RawStatement(statement).args(engine.dialect, params)[1]
            values = psql.SQL(", ").join(psql.Literal(args[name]) for name in names)
            explain = psql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE take({})")
            text = explain.format(values).as_string(dbapi)
            rows = conn.exec_driver_sql(text).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
        conn.exec_driver_sql("DEALLOCATE take")
    return plans


@pytest.mark.postgres
@pytest.mark.parametrize("analyze", [True, False], ids=["analyzed", "fresh"])
def test_the_generic_plan_of_the_postgresql_take_reads_rate_slots_by_the_primary_key(
    pg_engine: sa.Engine, analyze: bool
) -> None:
    """On the limiter thread the take is planned once (generic plan, `PG_SETTINGS`), not at
    every run: that plan too finds every row by the key, for one key or many, frees or not,
    and reads only the slots it needs: a key's free slots in slot order up to the first few
    free, each freed slot by (key, slot), each taken one by its `ctid`."""
    keys = {"big": MAX_SLOTS, "a": 100, "b": 100}
    _fill(pg_engine, keys, analyze=analyze)
    frees = {"k": ["big", "big"], "s": [3, 4], "at": [NOW, NOW]}
    runs = [
        {"ks": ["big"], "ns": [2], **frees, "now": NOW, "hold": NOW + 5_000},
        {"ks": list(keys), "ns": [1, 1, 1], **frees, "now": NOW, "hold": NOW + 5_000},
        {"ks": [], "ns": [], **frees, "now": 0, "hold": 0},
    ] * 3  # past the five custom plans PostgreSQL would try before a generic one
    plans = _generic_plans(pg_engine, _sql._build_write(), runs)
    for params, plan in zip(runs, plans, strict=True):
        assert "$" in plan, plan  # generic: the parameters are not in it as values
        taken = sum(params["ns"])  # type: ignore[arg-type]
        assert plan.startswith(f"Update on rate_slots (actual rows={taken} "), plan
        assert "Seq Scan on rate_slots" not in plan, plan
        assert _rows_read(plan) <= 20, plan  # the held ten and a few, not the key's 1,000
        assert "Sort Key: free.slot" not in plan, plan  # in slot order from the key


def _rows_read(plan: str) -> int:
    """The most rows any scan of `rate_slots` in `plan` returned or filtered out per loop."""
    rows = re.findall(r"Scan .*on rate_slots .*\(actual rows=(\d+) ", plan)
    removed = re.findall(r"Rows Removed by (?:Index Recheck|Filter): (\d+)", plan)
    return max(int(n) for n in [*rows, *removed, "0"])


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (_sql._build_take(), {"k": "big", "now": NOW, "hold": NOW + 5_000, "n": 2}),
        (_sql._FREE, {"k": "big", "s": 3, "at": NOW}),
        (_sql._WAIT, {"k": "big", "now": NOW}),
    ],
)
def test_the_sqlite_hot_statements_search_rate_slots_by_the_primary_key(
    sqlite_engine: sa.Engine, statement: sa.Executable, params: dict[str, Any]
) -> None:
    _fill(sqlite_engine, {"big": MAX_SLOTS, "a": 100})
    plan = _plan(sqlite_engine, statement, params)
    assert "SCAN" not in plan, plan
    assert "rate_slots" in plan, plan
