"""The settle thread's statement keeps one generic plan per connection (`_settle_pg.PG_SETTINGS`),
planned at its first run, maybe on a new, empty store: that plan must still find every row by
a key it is given once the store has filled, never read a table or a whole index."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.engine.queue._settle_pg import COMPLETE_MANY, PG_SETTINGS
from ghlsync.store._tables_engine import work_items
from ghlsync.store._tables_sync import id_map, sync_state
from tests._db import migrated
from tests._pg_plans import plan_kept

pytestmark = pytest.mark.postgres

ROWS = 3_000
LEASED = 16


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


def _completions(n: int) -> dict[str, Any]:
    """`PgSettle._write`'s parameters for the first `n` work rows (ids 1..n), each with an
    audit line, a sync state and a confirmed mapping."""
    ids = list(range(1, n + 1))
    sources = [f"s{i - 1}" for i in ids]
    many = {"location_id": "loc", "entity_type": "contact"}
    return {
        **{"c_id": ids, "c_token": [f"t{i - 1}" for i in ids], "c_gen": [1] * n},
        "c_now": [2.0] * n,
        **{"a_item": ids, "a_n": list(range(n)), "a_at": [2.0] * n, "a_source_id": sources},
        **{f"a_{k}": [v] * n for k, v in many.items()},
        **{"a_action": ["updated"] * n, "a_ghl_id": [None] * n, "a_calls": [1] * n},
        "a_detail": [None] * n,
        **{"s_item": ids, "s_source_id": sources, "s_side": ["ghl"] * n},
        **{f"s_{k}": [v] * n for k, v in many.items()},
        **{"s_content_hash": ["h"] * n, "s_source_updated_at": [None] * n},
        **{"s_snapshot": ["{}"] * n, "s_synced_at": [2.0] * n},
        **{"m_item": ids, "m_source_id": sources, "m_ghl_id": [f"g{i}" for i in ids]},
        **{f"m_{k}": [v] * n for k, v in many.items()},
        **{"m_state": ["confirmed"] * n, "m_pending_body": [None] * n},
        **{"m_pending_since": [None] * n, "m_updated_at": [2.0] * n},
    }


def _fill(engine: sa.Engine) -> None:
    """A queue of finished rows and `LEASED` leased ones (ids 1..16), each with a state and a
    pending mapping."""
    rows = [
        {
            "location_id": "loc",
            "entity_type": "contact",
            "source_id": f"s{i}",
            "status": "leased" if i < LEASED else "done",
            "lease_token": f"t{i}",
            "event": "customer.updated",
            "payload": "{}",
            "available_at": 1.0,
            "created_at": 1.0,
            "updated_at": 1.0,
        }
        for i in range(ROWS)
    ]
    states = [
        {"location_id": "loc", "entity_type": "contact", "source_id": f"s{i}", "side": "ghl"}
        | {"content_hash": "h", "snapshot": "{}", "synced_at": 1.0}
        for i in range(ROWS)
    ]
    maps = [
        {"location_id": "loc", "entity_type": "contact", "source_id": f"s{i}"}
        | {"state": "pending", "pending_body": "{}", "pending_since": 1.0, "updated_at": 1.0}
        for i in range(ROWS)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(work_items), rows)
        conn.execute(sa.insert(sync_state), states)
        conn.execute(sa.insert(id_map), maps)


def test_a_plan_made_on_an_empty_store_reads_rows_by_key_on_a_full_one(
    engine: sa.Engine,
) -> None:
    params = _completions(6)
    sql, args = COMPLETE_MANY.args(engine.dialect, params)
    # The plan stays: new rows do not make PostgreSQL plan again.
    plan = plan_kept(engine, "settle", sql, args, PG_SETTINGS, lambda: _fill(engine))
    assert plan.startswith("CTE Scan on done (actual rows=6 "), plan  # all six settled
    assert "Seq Scan" not in plan, plan
    read = re.findall(r"Scan .*on (?:work_items|sync_state|id_map)\S* .*\(actual rows=(\d+) ", plan)
    assert "on id_map" in plan, plan
    assert read and max(int(n) for n in read) <= LEASED, plan
