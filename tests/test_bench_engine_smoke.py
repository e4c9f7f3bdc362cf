"""The engine benchmark's instant GHL is honest: the real worker syncs every change through it
exactly once, with the shapes the flows need (no timing here; the figures are in bench/)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from _engine_workload import MARKER, pool_size, timed_event
from _instant_ghl import InstantGHL
from bench_engine import (
    accept_all,
    bench_config,
    ghl_client,
    queue_problems,
    run_until,
    warm_pool,
)
from ghlsync.engine import Worker
from ghlsync.mapping import Mapper
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_sync import id_map

EVENTS = 50


async def test_every_change_reaches_the_instant_ghl_exactly_once(database_url: str) -> None:
    engine = create_engine(database_url)
    migrate(engine)
    ghl = InstantGHL()
    client = ghl_client(ghl.transport())
    config = bench_config(concurrency=8)
    worker = Worker(engine, client, Mapper(config), config)
    pool = pool_size(EVENTS)
    async with client:
        await warm_pool(engine, worker, pool, "smoke")
        accept_all(engine, worker.mapper, [timed_event(i, pool, "smoke") for i in range(EVENTS)])
        await run_until(worker, worker.processed + EVENTS, seconds=60)

    seen = Counter(int(m[1]) for w in ghl.writes if (m := MARKER.search(w.body)))
    assert seen == Counter(range(EVENTS))  # every change, each in exactly one write
    assert queue_problems(engine) == []
    routes = Counter(f"{w.method} {w.path.split('/')[1]}" for w in ghl.writes)
    new_contacts = sum(1 for i in range(EVENTS) if i % 10 < 3)
    assert routes["POST contacts"] >= pool + new_contacts  # upserts, tags, tasks, notes
    assert len(ghl.contacts) == pool + new_contacts
    assert all("lead" in c["tags"] for c in ghl.contacts.values())  # tag answers were read
    with engine.connect() as conn:
        rows = conn.execute(sa.select(id_map.c.ghl_id, id_map.c.state)).all()
    assert {state for _, state in rows} == {"confirmed"}
    assert len(rows) == pool + EVENTS - 2 * (EVENTS // 10)  # updates map no new object
    engine.dispose()


async def test_at_ghls_default_rule_a_new_customer_is_one_create_call(tmp_path: Path) -> None:
    """Where the instant GHL's location refuses duplicates (as a location at GHL's default
    setting, and the sandbox's, do), the flow creates with one call carrying the tags."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    ghl = InstantGHL(refuses_duplicates=True)
    client = ghl_client(ghl.transport())
    config = bench_config(concurrency=8)
    worker = Worker(engine, client, Mapper(config), config)
    pool = pool_size(EVENTS)
    async with client:
        await warm_pool(engine, worker, pool, "dflt")
        accept_all(engine, worker.mapper, [timed_event(i, pool, "dflt") for i in range(EVENTS)])
        await run_until(worker, worker.processed + EVENTS, seconds=60)

    seen = Counter(int(m[1]) for w in ghl.writes if (m := MARKER.search(w.body)))
    assert seen == Counter(range(EVENTS))
    assert queue_problems(engine) == []
    new_contacts = sum(1 for i in range(EVENTS) if i % 10 < 3)
    creates = [w for w in ghl.writes if (w.method, w.path) == ("POST", "/contacts/")]
    assert len(creates) == pool + new_contacts
    assert not [w for w in ghl.writes if w.path in ("/contacts/upsert",) or "/tags" in w.path]
    assert all("lead" in c["tags"] for c in ghl.contacts.values())  # the create carried them
    engine.dispose()


def test_the_instant_ghl_refuses_a_known_email_as_ghl_does() -> None:
    ghl = InstantGHL(refuses_duplicates=True)
    status, first = ghl.answer("POST", "/contacts/", b'{"email": "A@x.io", "tags": ["t"]}')
    assert status == 201 and first["contact"]["tags"] == ["t"]
    status, again = ghl.answer("POST", "/contacts/", b'{"email": "a@x.io"}')
    assert status == 400
    assert again["meta"] == {"contactId": first["contact"]["id"], "matchingField": "email"}
    assert len(ghl.writes) == 1  # the refused create wrote nothing
    status, location = ghl.answer("GET", "/locations/loc1", b"")
    assert (status, location["location"]["settings"]) == (200, {"allowDuplicateContact": False})
    assert InstantGHL().answer("GET", "/locations/loc1", b"")[0] == 404
