"""The SQLite claim at the driver level: the same answers as SQLAlchemy Core would give.

The reference below is the claim written plainly in Core (one query per question, each
location's heads separately) with the round robin of `_fair`'s docstring; the claim must agree
with it on any queue: several locations, due and not-yet-due items, live and abandoned leases.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghlsync._clock import FakeClock
from ghlsync.engine import Claim, claim, locations_with_work
from ghlsync.engine.queue._queue import claim_noting_work
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables_engine import work_items

w = work_items.c
NOW = 1_000.0
LOCATIONS = ("a", "b", "c", "d")
# What a row of the generated queue is; lease expiries differ from row to row, so "the oldest
# `limit` abandoned leases" has one answer.
KINDS = ("due", "later", "live", "abandoned", "done")


@pytest.fixture
def store(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _row(index: int, location: str, kind: str, at: int) -> dict[str, Any]:
    leased = kind in ("live", "abandoned")
    expires = {"live": NOW + 1 + index, "abandoned": NOW - 1 - index}.get(kind)
    return {
        "id": index + 1,
        "location_id": location,
        "entity_type": "contact",
        "source_id": f"s{index}",
        "status": "leased" if leased else "done" if kind == "done" else "pending",
        "event": "customer.updated",
        "payload": f'{{"n": {index}}}',
        "available_at": NOW + 1 + at if kind == "later" else float(at),
        "lease_owner": "old" if leased else None,
        "lease_token": f"t{index}" if leased else None,
        "lease_expires_at": expires,
        "attempts": 1 if leased else 0,
        "created_at": float(at),
        "updated_at": float(at),
    }


def _fill(engine: sa.Engine, rows: Sequence[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(work_items))
        if rows:
            conn.execute(sa.insert(work_items), list(rows))


def _table(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every row but the lease tokens (fresh per claim)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(work_items).order_by(w.id)).mappings()
        return [{k: v for k, v in row.items() if k != "lease_token"} for row in rows]


# ---------------------------------------------------------------- the reference, in Core


def _reference_locations(conn: sa.Connection) -> list[str]:
    pending = sa.select(w.location_id).where(w.status == "pending")
    abandoned = sa.select(w.location_id).where(w.status == "leased", w.lease_expires_at <= NOW)
    return sorted(set(conn.execute(pending.union(abandoned)).scalars()))


def _reference_heads(conn: sa.Connection, locs: Sequence[str], k: int) -> list[Any]:
    rows: list[Any] = []
    for loc in locs:
        query = (
            sa.select(w.id, w.location_id, w.available_at)
            .where(w.status == "pending", w.location_id == loc, w.available_at <= NOW)
            .order_by(w.available_at, w.id)
            .limit(k)
        )
        rows += conn.execute(query).all()
    return rows


def _reference_order(conn: sa.Connection, locations: Sequence[str] | None, limit: int) -> list[int]:
    locs = list(locations) if locations is not None else _reference_locations(conn)
    if not locs:
        return []
    wanted, k = limit * 2, math.ceil(limit / len(locs)) * 2
    heads = _reference_heads(conn, locs, k)
    per_location: dict[str, int] = defaultdict(int)
    for row in heads:
        per_location[row.location_id] += 1
    full = sorted(loc for loc, n in per_location.items() if n >= k)
    if len(heads) < wanted and full:
        heads = [r for r in heads if r.location_id not in full]
        heads += _reference_heads(conn, full, math.ceil(wanted / len(full)))
    abandoned = conn.execute(
        sa.select(w.id, w.location_id, w.available_at)
        .where(w.status == "leased", w.lease_expires_at <= NOW, w.location_id.in_(locs))
        .order_by(w.lease_expires_at)
        .limit(limit)
    ).all()
    live = conn.execute(
        sa.select(w.location_id, sa.func.count())
        .where(w.status == "leased", w.lease_expires_at > NOW)
        .group_by(w.location_id)
    ).all()
    return _round_robin([*abandoned, *heads], {loc: int(n) for loc, n in live})


def _round_robin(rows: Sequence[Any], in_flight: dict[str, int]) -> list[int]:
    """A location's n-th candidate goes in turn n + its items in flight; oldest first."""
    by_location: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for row in rows:
        by_location[row.location_id].append((row.available_at, row.id))
    ranked = [
        (in_flight.get(loc, 0) + turn, at, item_id)
        for loc, items in by_location.items()
        for turn, (at, item_id) in enumerate(sorted(items))
    ]
    return [item_id for _, _, item_id in sorted(ranked)]


def _reference_claim(
    engine: sa.Engine, locations: Sequence[str] | None, limit: int
) -> list[tuple[Any, ...]]:
    with begin_immediate(engine) as conn:
        ids = _reference_order(conn, locations, limit)[:limit]
        conn.execute(
            sa.update(work_items)
            .where(w.id.in_(ids))
            .values(
                status="leased",
                lease_owner="w1",
                lease_token="x",
                lease_expires_at=NOW + 30,
                attempts=w.attempts + 1,
                updated_at=NOW,
            )
        )
        rows = {row.id: row for row in conn.execute(sa.select(work_items).where(w.id.in_(ids)))}
    return [
        (i, rows[i].location_id, rows[i].source_id, rows[i].attempts, rows[i].lease_expires_at)
        for i in ids
    ]


def _seen(claims: Sequence[Claim]) -> list[tuple[Any, ...]]:
    return [(c.id, c.location_id, c.source_id, c.attempts, c.lease_expires_at) for c in claims]


# ---------------------------------------------------------------- the tests


def _varied() -> list[dict[str, Any]]:
    """Five locations: a backlog, live and abandoned leases, items not due yet, done rows."""
    plan = [("a", "due")] * 12 + [("a", "later")] * 3 + [("b", "due")] * 2
    plan += [("b", "live")] * 2 + [("c", "abandoned")] * 3 + [("c", "due"), ("d", "abandoned")]
    plan += [("d", "live"), ("e", "later"), ("e", "done"), ("a", "done")]
    return [_row(i, loc, kind, at=(7 * i) % 11) for i, (loc, kind) in enumerate(plan)]


def test_the_sqlite_claim_runs_at_the_driver_level(store: sa.Engine) -> None:
    _fill(store, _varied())
    core: list[str] = []
    driver: list[str] = []
    sa.event.listen(store, "before_cursor_execute", lambda *args: core.append(args[2]))
    sa.event.listen(store, "connect", lambda dbapi, _: dbapi.set_trace_callback(driver.append))
    store.dispose()  # new connections, traced
    got = claim(store, "w1", None, 6, 30, clock=FakeClock(NOW))
    assert len(got) == 6
    # The driver ran it all (SQLAlchemy's `begin` hook emits the BEGIN there too): the active
    # locations, the candidates (heads, abandoned leases, leases in flight at once), more of
    # the backlog's heads ("a" filled its share of 4, the batch wanted 12), the lease.
    assert core == []
    assert [sql.split()[0] for sql in driver] == [
        "BEGIN",
        "WITH",
        "SELECT",
        "SELECT",
        "UPDATE",
        "COMMIT",
    ]


@pytest.mark.parametrize(
    ("locations", "limit"),
    [(None, 1), (None, 4), (None, 9), (None, 40), (["c", "a"], 3), (["b", "d", "z"], 5)],
)
def test_claims_equal_the_core_reference_on_a_varied_queue(
    store: sa.Engine, locations: list[str] | None, limit: int
) -> None:
    _fill(store, _varied())
    clock = FakeClock(NOW)
    for _ in range(3):  # each round starts from what the previous one leased
        before = _table(store)
        expected = _reference_claim(store, locations, limit)
        after_reference = _table(store)
        _fill(store, before)
        assert _seen(claim(store, "w1", locations, limit, 30, clock=clock)) == expected
        assert _table(store) == after_reference
        assert locations_with_work(store, clock=clock) == _reference_locations_of(store)


@pytest.mark.parametrize(("locations", "limit"), [([], 3), (["c", "a"], 3), (["b", "d", "z"], 5)])
def test_a_claim_noting_work_claims_as_the_reference_and_sees_the_locations_before_it(
    store: sa.Engine, locations: list[str], limit: int
) -> None:
    _fill(store, _varied())
    with_work = _reference_locations_of(store)
    expected = _reference_claim(store, locations, limit) if locations else []
    after_reference = _table(store)
    _fill(store, _varied())
    got = claim_noting_work(store, "w1", locations, limit, 30, clock=FakeClock(NOW))
    assert (_seen(got.items), got.with_work) == (expected, with_work)
    assert _table(store) == after_reference


def _reference_locations_of(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return _reference_locations(conn)


_ROWS = st.lists(
    st.tuples(st.sampled_from(LOCATIONS), st.sampled_from(KINDS), st.integers(0, 20)),
    max_size=40,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=_ROWS,
    locations=st.none() | st.lists(st.sampled_from((*LOCATIONS, "z")), unique=True, min_size=1),
    limit=st.integers(1, 12),
)
def test_any_queue_claims_as_the_core_reference(
    store: sa.Engine, plan: list[tuple[str, str, int]], locations: list[str] | None, limit: int
) -> None:
    rows = [_row(i, loc, kind, at) for i, (loc, kind, at) in enumerate(plan)]
    _fill(store, rows)
    expected = _reference_claim(store, locations, limit)
    after_reference = _table(store)
    _fill(store, rows)
    assert _seen(claim(store, "w1", locations, limit, 30, clock=FakeClock(NOW))) == expected
    assert _table(store) == after_reference
