"""PostgreSQL: the ledger's batched load (`_pgbatch.LOAD_MANY`) seeks each key on its primary
keys, in the plan PostgreSQL keeps for the prepared statement even when that plan was made
on an empty store (a new one; this machine's PostgreSQL, with autovacuum off, never has
statistics) and runs on a large one.

Before migration 0018 and the `LATERAL` form, that plan read the location's every `id_map` row
through `ix_id_map_state` (then led by location and type) and every `ghl` row of `sync_state`
(a Materialize under the join), per statement: ~17 ms for 9 keys among 20,000, 0.2 ms now."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ghlsync.engine.queue._claim_pg import PG_SETTINGS
from ghlsync.engine.state._pgbatch import LOAD_MANY
from tests._db import migrated
from tests._pg_plans import plan_kept

pytestmark = pytest.mark.postgres
ROWS = 20_000


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    yield from migrated(postgres_url)


def _fill(engine: sa.Engine) -> None:
    """One location's map and states, 20,000 contacts."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO id_map (location_id, entity_type, source_id, ghl_id, state, updated_at)"
            f" SELECT 'loc', 'contact', 'c' || g, 'g' || g, 'confirmed', 0"
            f" FROM generate_series(1, {ROWS}) g"
        )
        conn.exec_driver_sql(
            "INSERT INTO sync_state"
            " (location_id, entity_type, source_id, side, content_hash, snapshot, synced_at)"
            f" SELECT 'loc', 'contact', 'c' || g, 'ghl', 'h', '{{}}', 0"
            f" FROM generate_series(1, {ROWS}) g"
        )


@pytest.mark.parametrize(
    "settings",
    [
        PG_SETTINGS,  # the claim's thread, where the claim's early reads run
        {"plan_cache_mode": "force_generic_plan"},  # the ledger's reads thread, once generic
    ],
    ids=["claim-thread", "reads-thread"],
)
def test_a_load_planned_on_an_empty_store_seeks_each_key(
    engine: sa.Engine, settings: dict[str, str]
) -> None:
    keys = [("loc", "contact", f"c{i}") for i in range(15_000, 15_009)]
    params = {"ls": [k[0] for k in keys], "ts": [k[1] for k in keys], "ss": [k[2] for k in keys]}
    sql, args = LOAD_MANY.args(engine.dialect, params)
    plan = plan_kept(engine, "load_many", sql, args, settings, lambda: _fill(engine))
    assert "Rows Removed" not in plan and "Materialize" not in plan, plan
    scans = re.findall(r"Index Scan using (\w+) on \w+ \(actual rows=(\d+) loops=(\d+)\)", plan)
    assert sorted(scans) == [("id_map_pkey", "1", "9"), ("sync_state_pkey", "1", "9")], plan
