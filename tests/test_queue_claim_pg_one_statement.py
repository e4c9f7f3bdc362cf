"""The PostgreSQL claim is one statement in autocommit (two when it must find the locations with
work itself; one with them, `claim_noting_work`): the same answers as the Core reference
(`test_engine_queue_claim_sqlite`: fair order, in-flight turns, abandoned leases), one round trip,
rows another claimer holds passed over in fair order, and every item leased once however many
claimers race for it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghlsync._clock import FakeClock
from ghlsync.engine import claim, complete, locations_with_work
from ghlsync.engine.queue._queue import claim_noting_work
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import work_items
from tests.test_engine_queue_claim_sqlite import (
    _ROWS,
    NOW,
    _fill,
    _reference_claim,
    _reference_locations_of,
    _row,
    _seen,
    _table,
    _varied,
)

pytestmark = pytest.mark.postgres
w = work_items.c


@pytest.fixture
def store(postgres_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


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


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=_ROWS, limit=st.integers(1, 12))
def test_any_queue_claims_as_the_core_reference(
    store: sa.Engine, plan: list[tuple[str, str, int]], limit: int
) -> None:
    rows = [_row(i, loc, kind, at) for i, (loc, kind, at) in enumerate(plan)]
    for locations in (None, ["a", "c", "z"]):
        _fill(store, rows)
        expected = _reference_claim(store, locations, limit)
        after_reference = _table(store)
        _fill(store, rows)
        assert _seen(claim(store, "w1", locations, limit, 30, clock=FakeClock(NOW))) == expected
        assert _table(store) == after_reference


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=_ROWS,
    locations=st.lists(st.sampled_from(("a", "b", "c", "d", "e", "z")), unique=True),
    limit=st.integers(1, 12),
)
def test_a_claim_noting_work_claims_as_the_reference_and_sees_the_locations_before_it(
    store: sa.Engine, plan: list[tuple[str, str, int]], locations: list[str], limit: int
) -> None:
    rows = [_row(i, loc, kind, at) for i, (loc, kind, at) in enumerate(plan)]
    _fill(store, rows)
    with_work = _reference_locations_of(store)
    expected = _reference_claim(store, locations, limit) if locations else []
    after_reference = _table(store)
    _fill(store, rows)
    got = claim_noting_work(store, "w1", locations, limit, 30, clock=FakeClock(NOW))
    assert (_seen(got.items), got.with_work) == (expected, with_work)
    assert _table(store) == after_reference


def _traced(store: sa.Engine) -> list[tuple[str, bool]]:
    """Every statement the driver runs on `store`'s new connections, with whether it ran in
    autocommit (else the driver sent a BEGIN before it and the caller a COMMIT or ROLLBACK)."""
    seen: list[tuple[str, bool]] = []

    class Traced(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append((str(query).split()[0], self.connection.autocommit))
            return super().execute(query, *args, **kwargs)

    sa.event.listen(store, "connect", lambda dbapi, _: setattr(dbapi, "cursor_factory", Traced))
    store.dispose()
    return seen


def test_a_claim_and_the_locations_with_work_are_one_round_trip_each(store: sa.Engine) -> None:
    _fill(store, _varied())
    seen = _traced(store)
    clock = FakeClock(NOW)
    assert locations_with_work(store, clock=clock) == ["a", "b", "c", "d", "e"]
    assert len(claim(store, "w1", ["a", "b"], 3, 30, clock=clock)) == 3
    assert seen == [("WITH", True)] * 2  # no BEGIN, no COMMIT: one statement each
    assert len(claim(store, "w1", None, 6, 30, clock=clock)) == 6  # the locations, the claim
    assert seen == [("WITH", True)] * 4
    with store.connect() as conn:  # the pooled connection went back transactional
        assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]


def test_a_claim_noting_work_is_one_round_trip_with_or_without_locations(
    store: sa.Engine,
) -> None:
    # The worker's claim: which locations have work (to ask the rate limiter about them) and
    # the claim from those that may go were two statements per claim.
    _fill(store, _varied())
    seen = _traced(store)
    clock = FakeClock(NOW)
    got = claim_noting_work(store, "w1", ["a", "b"], 3, 30, clock=clock)
    assert (len(got.items), got.with_work) == (3, ["a", "b", "c", "d", "e"])
    assert claim_noting_work(store, "w1", [], 3, 30, clock=clock).items == []
    assert seen == [("WITH", True)] * 2  # no BEGIN, no COMMIT: one statement each


def test_a_failed_claim_leaves_the_pool_transactional(store: sa.Engine) -> None:
    with pytest.raises(sa.exc.DataError):  # text cannot hold NUL: the driver refuses it
        claim(store, "w1", ["a\x00"], 5, 30, clock=FakeClock(NOW))
    with store.connect() as conn:
        assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]


def test_a_claim_on_a_lost_connection_fails_once_then_works(store: sa.Engine) -> None:
    _fill(store, _varied())
    with store.connect() as conn:  # the pool's only connection so far
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        conn.rollback()
    admin = create_engine(store.url.render_as_string(hide_password=False))
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    with pytest.raises(sa.exc.OperationalError):
        claim(store, "w1", None, 2, 30, clock=FakeClock(NOW))
    assert len(claim(store, "w1", None, 2, 30, clock=FakeClock(NOW))) == 2
    with store.connect() as conn:
        assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]


def _bulk(store: sa.Engine, locations: tuple[str, ...], n: int) -> dict[str, list[int]]:
    """`n` due items per location, the i-th of each due at i; their ids per location."""
    rows = [
        {
            "location_id": loc,
            "entity_type": "contact",
            "source_id": f"{loc}-{i}",
            "status": "pending",
            "event": "customer.updated",
            "payload": "{}",
            "available_at": float(i),
            "created_at": float(i),
            "updated_at": float(i),
        }
        for i in range(n)
        for loc in locations
    ]
    with store.begin() as conn:
        conn.execute(sa.insert(work_items), rows)
        found = conn.execute(sa.select(w.location_id, w.id).order_by(w.available_at, w.id))
        ids: dict[str, list[int]] = {loc: [] for loc in locations}
        for loc, item_id in found:
            ids[loc].append(item_id)
    return ids


def test_rows_another_claimer_holds_are_passed_over_in_fair_order(store: sa.Engine) -> None:
    ids = _bulk(store, ("a", "b", "c"), 3)
    with store.connect() as holder:  # mid-claim elsewhere: a's oldest and b's second
        holder.execute(
            sa.select(w.id).where(w.id.in_([ids["a"][0], ids["b"][1]])).with_for_update()
        )
        batch = claim(store, "w1", None, 4, 60, clock=FakeClock(NOW))
        holder.rollback()
    # Turn 1: b, c (a's is held); turn 2: a's second (b's second is held), c's second.
    assert [c.id for c in batch] == [ids["b"][0], ids["c"][0], ids["a"][1], ids["c"][1]]


def test_an_abandoned_lease_is_taken_over_in_its_turn_unless_held(store: sa.Engine) -> None:
    ids = _bulk(store, ("a", "b"), 2)
    clock = FakeClock(NOW)
    (dead,) = claim(store, "gone", ["a"], 1, 30, clock=clock)  # a's oldest, then its worker died
    clock.advance(31)
    with store.connect() as holder:
        holder.execute(sa.select(w.id).where(w.id == dead.id).with_for_update())
        batch = claim(store, "w1", None, 2, 30, clock=clock)
        holder.rollback()
    assert [c.id for c in batch] == [ids["b"][0], ids["a"][1]]  # the abandoned one was held
    (taken,) = claim(store, "w2", None, 1, 30, clock=clock)
    assert (taken.id, taken.attempts, taken.lease_owner) == (dead.id, 2, "w2")


def test_racing_claimers_lease_every_item_once(store: sa.Engine) -> None:
    # Claims read the fair order from their snapshot, then lock: a row another claimer leased
    # in between must be passed over (its eligibility checked again on the latest version).
    ids = _bulk(store, ("a", "b", "c", "d"), 60)
    clock = FakeClock(NOW)
    got: Counter[int] = Counter()
    lost: list[int] = []  # items whose lease another claimer took while we held it
    lock = threading.Lock()

    def run(worker: str, limit: int) -> None:
        while batch := claim(store, worker, None, limit, 600, clock=clock):
            with lock:
                got.update(c.id for c in batch)
            lost.extend(item.id for item in batch if not complete(store, item, clock=clock))

    threads = [threading.Thread(target=run, args=(f"w{n}", 1 + n % 3)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == sorted(i for group in ids.values() for i in group)
    assert set(got.values()) == {1}
    with store.connect() as conn:
        states = conn.execute(sa.select(w.status, w.attempts).distinct()).all()
    assert states == [("done", 0)] and lost == []


def test_a_short_batch_takes_more_of_each_busy_location_up_to_a_fair_share(
    store: sa.Engine,
) -> None:
    # Eight locations named, two with due work: the batch of 4 wants 8 candidates, so each
    # busy location gives ceil(8 / 2) = 4, no more, even when the others' rows are held.
    ids = _bulk(store, ("a", "b"), 10)
    idle = [f"idle{i}" for i in range(6)]
    held = [*ids["a"][:3], *ids["b"][:3]]
    with store.connect() as holder:
        holder.execute(sa.select(w.id).where(w.id.in_(held)).with_for_update())
        batch = claim(store, "w1", ["a", "b", *idle], 4, 60, clock=FakeClock(NOW))
        holder.rollback()
    assert [c.id for c in batch] == [ids["a"][3], ids["b"][3]]
