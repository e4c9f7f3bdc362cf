"""PostgreSQL: the worker's completions written many in one statement (`_settle_pg`) leave the
store exactly as `complete_in` + the states' `write_in` in a shared transaction do: work rows,
audit lines (in order), sync states and confirmed mappings; a lost lease writes nothing; one
bad completion fails alone; the same sync-state or mapping key twice in a batch is written in
queue order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.queue._queue import AuditEntry, Claim, claim, complete_in
from ghlsync.engine.queue._settle import Settler
from ghlsync.engine.queue._settle_pg import Completion, _runs, for_engine
from ghlsync.engine.state import _idmap, _syncstate
from ghlsync.engine.state._syncstate import SyncState
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import audit_log, work_items
from ghlsync.store._tables_sync import id_map, sync_state
from tests._db import fresh_postgres_database
from tests._engine_kit import delivery, send

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_stores() -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two empty PostgreSQL stores: one settles in one statement, the other the old way."""
    first, second = fresh_postgres_database(), fresh_postgres_database()
    engines = [create_engine(next(first)), create_engine(next(second))]
    for engine in engines:
        migrate(engine)
    yield engines[0], engines[1]
    for engine in engines:
        engine.dispose()
    for gen in (first, second):
        next(gen, None)


def _state(location: str, source: str, text: str, at: float | None) -> dict[str, Any]:
    state = SyncState(f"h-{text}", at, {"body": {"firstName": text}})
    return _syncstate.put_params(location, "contact", source, state, now=at or 5.0)


def _mapped(source: str, ghl_id: str) -> dict[str, Any]:
    return _idmap.put_params(
        "loc1", "contact", source, ghl_id=ghl_id, state="confirmed", pending_body=None, now=7.0
    )


def _scenario(engine: sa.Engine) -> list[Completion]:
    """Six leased items and their completions: two share a sync-state key, one lost its
    lease, one got a newer delivery after the claim, one writes two audit lines and no state;
    three confirm a mapping (one of them the item that lost its lease)."""
    with engine.begin() as conn:  # c0's create was announced
        pending = {"email": "a@x.io"}
        _idmap.put(
            conn,
            "loc1",
            "contact",
            "c0",
            ghl_id=None,
            state="pending",
            pending_body=pending,
            now=1.0,
        )
    for n in range(6):
        send(engine, delivery(f"c{n}", "customer.created", delivery_id=f"d{n}", first_name="A"))
    items = claim(engine, "w1", None, 10, 60.0, clock=FakeClock())
    assert [i.source_id for i in items] == [f"c{n}" for n in range(6)]
    send(engine, delivery("c3", "customer.updated", delivery_id="d3b", first_name="B"))
    lost = _with_token(items[2], "not-the-lease")
    audit = [AuditEntry("created", ghl_id=f"g{n}", calls=1) for n in range(6)]
    return [
        Completion(
            items[0], [audit[0]], 100.0, [_state("loc1", "c0", "zero", 10.0)], [_mapped("c0", "g0")]
        ),
        Completion(items[1], [audit[1]], 101.0, [_state("loc1", "shared", "first", 11.0)]),
        Completion(
            lost, [audit[2]], 102.0, [_state("loc1", "c2", "lost", 12.0)], [_mapped("c2", "g2")]
        ),
        Completion(items[3], [audit[3]], 103.0, [_state("loc1", "c3", "three", None)]),
        Completion(
            items[4], [audit[4], AuditEntry("tagged", detail="x")], 104.0, [], [_mapped("c4", "g4")]
        ),
        Completion(items[5], [audit[5]], 105.0, [_state("loc1", "shared", "second", 9.0)]),
    ]


def _with_token(item: Claim, token: str) -> Claim:
    fields = {name: getattr(item, name) for name in Claim.__dataclass_fields__}
    return Claim(**{**fields, "lease_token": token})


def _contents(engine: sa.Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            "work": [
                tuple(r)
                for r in conn.execute(
                    sa.select(
                        work_items.c.source_id,
                        work_items.c.status,
                        work_items.c.done_generation,
                        work_items.c.available_at,
                        work_items.c.updated_at,
                        work_items.c.lease_token.is_(None),  # each store's own tokens
                        work_items.c.attempts,
                    ).order_by(work_items.c.id)
                )
            ],
            "audit": [
                tuple(r)
                for r in conn.execute(
                    sa.select(*(c for c in audit_log.c if c.name != "id")).order_by(audit_log.c.id)
                )
            ],
            "states": [
                tuple(r)
                for r in conn.execute(sa.select(sync_state).order_by(*sync_state.primary_key))
            ],
            "maps": [
                tuple(r) for r in conn.execute(sa.select(id_map).order_by(*id_map.primary_key))
            ],
        }


async def _old_way(engine: sa.Engine, completions: list[Completion]) -> list[bool]:
    """Each completion as the worker's settle op, in a transaction shared with the others."""
    settler = Settler(engine)
    settler._pg = None  # the transaction path, as on SQLite

    def op(c: Completion) -> Any:
        def run(conn: sa.Connection) -> bool:
            settled = complete_in(conn, c.item, c.audit, c.now)
            if settled:
                for row in c.states:
                    conn.execute(_syncstate._UPSERT["postgresql"], row)
                for row in c.maps:
                    conn.execute(_idmap._UPSERT["postgresql"], row)
            return settled

        return run

    return list(await asyncio.gather(*(settler.run(op(c)) for c in completions)))


async def test_one_statement_writes_what_the_shared_transaction_wrote(
    two_stores: tuple[sa.Engine, sa.Engine],
) -> None:
    new, old = two_stores
    batch = for_engine(new)
    assert batch is not None
    completions = _scenario(new)
    executed: list[str] = []
    original = psycopg.Cursor.execute

    def counting(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        executed.append(str(query))
        return original(self, query, *args, **kwargs)

    psycopg.Cursor.execute = counting  # type: ignore[method-assign]
    raw = new.raw_connection()
    try:
        raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        answers = batch._complete_many(raw.dbapi_connection, completions)
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
        raw.dbapi_connection.autocommit = False  # type: ignore[union-attr]
        raw.close()
    assert answers == [True, True, False, True, True, True]
    # One statement for the first five, a second for the key the sixth shares with the second.
    assert len(executed) == 2

    expected = await _old_way(old, _scenario(old))
    assert expected == answers
    assert _contents(new) == _contents(old)
    contents = _contents(new)
    assert [w[1] for w in contents["work"]] == ["done", "done", "leased", "pending", "done", "done"]
    shared = [s for s in contents["states"] if s[2] == "shared"]
    assert shared[0][4:6] == ("h-second", 9.0)  # queue order: the later completion wins
    c3 = [s for s in contents["states"] if s[2] == "c3"]
    assert c3[0][5] is None  # no source timestamp given, none recorded before
    assert not [s for s in contents["states"] if s[2] == "c2"]  # lost lease: no state
    assert [a[4] for a in contents["audit"]] == ["created"] * 3 + ["created", "tagged", "created"]
    # The pending mapping of c0 confirmed; c4's new; the lost lease's c2 not written.
    assert [(m[2], m[3], m[4], m[5]) for m in contents["maps"]] == [
        ("c0", "g0", "confirmed", None),
        ("c4", "g4", "confirmed", None),
    ]


def test_the_same_mapping_twice_in_a_batch_starts_a_new_statement() -> None:
    """Two completions confirming one mapping (an upsert cannot touch a row twice in one
    statement) go in two statements, in queue order; other keys share one."""
    item = Claim.__new__(Claim)
    batch = [
        Completion(item, [], 1.0, [], [_mapped("c1", "g1")]),
        Completion(item, [], 2.0, [_state("loc1", "c1", "x", 1.0)], [_mapped("c2", "g2")]),
        Completion(item, [], 3.0, [], [_mapped("c1", "g1b")]),
        Completion(item, [], 4.0, [_state("loc1", "c2", "y", 2.0)], []),
    ]
    assert _runs(batch) == [[0, 1], [2, 3]]


async def test_a_bad_completion_fails_alone(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    migrate(engine)
    try:
        batch = for_engine(engine)
        assert batch is not None
        for n in range(3):
            send(engine, delivery(f"c{n}", "customer.created", delivery_id=f"d{n}"))
        items = claim(engine, "w1", None, 10, 60.0)
        too_long = AuditEntry("created", ghl_id="x" * 200)  # ghl_id is VARCHAR(64)
        answers = await asyncio.gather(
            batch.complete(Completion(items[0], [AuditEntry("created")], 1.0, [])),
            batch.complete(Completion(items[1], [too_long], 1.0, [])),
            batch.complete(Completion(items[2], [AuditEntry("created")], 1.0, [])),
            return_exceptions=True,
        )
        assert answers[0] is True and answers[2] is True
        assert isinstance(answers[1], sa.exc.DBAPIError)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(work_items.c.source_id, work_items.c.status))
            status = {source: value for source, value in rows}
            audited = conn.execute(sa.select(audit_log.c.source_id)).scalars().all()
        assert status == {"c0": "done", "c1": "leased", "c2": "done"}
        assert sorted(audited) == ["c0", "c2"]  # the failed one wrote nothing
    finally:
        engine.dispose()


async def test_the_statement_is_planned_once_per_connection(postgres_url: str) -> None:
    """The settle thread's session plans its statement once (a generic plan, `PG_SETTINGS`),
    not at every run: PostgreSQL's own choice was a new custom plan each time."""
    engine = create_engine(postgres_url)
    migrate(engine)
    try:
        batch = for_engine(engine)
        assert batch is not None
        for n in range(8):  # past the five custom plans PostgreSQL tries before choosing
            send(engine, delivery(f"c{n}", "customer.created", delivery_id=f"d{n}"))
        items = claim(engine, "w1", None, 10, 60.0)
        plans = """
            SELECT generic_plans, custom_plans FROM pg_prepared_statements
            WHERE statement LIKE 'WITH locked AS%'
        """
        for item in items:
            assert await batch.complete(Completion(item, [AuditEntry("created")], 1.0, []))
            # On the connection the thread keeps between batches that keep coming (HOLD_S).
            counted = await batch._thread.run(lambda conn: conn.execute(plans).fetchall())
            assert len(counted) == 1, counted
            generic, custom = counted[0]
            assert generic >= 1 and custom == 0, counted
    finally:
        engine.dispose()


def test_sqlite_has_no_batcher(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert for_engine(engine) is None
    finally:
        engine.dispose()
