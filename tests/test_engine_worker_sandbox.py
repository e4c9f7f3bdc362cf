"""The worker with the real flows and GHL client against the in-process GHL sandbox."""

from __future__ import annotations

import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Delivery, Worker
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store._tables_engine import audit_log, dead_letters
from tests._engine_kit import count, delivery, send, work_row
from tests._sandbox import InProcessSandbox


def _deliveries(location: str) -> list[Delivery]:
    return [
        delivery(
            "c1",
            "customer.created",
            location=location,
            delivery_id="1",
            first_name="Ann",
            last_name="Lee",
            email="ann@example.com",
        ),
        delivery(
            "c1",
            "customer.created",
            location=location,
            delivery_id="1",
            first_name="Ann",
            last_name="Lee",
            email="ann@example.com",
        ),  # duplicate
        delivery(
            "t1",
            "task.created",
            entity_type="task",
            location=location,
            delivery_id="2",
            customer_id="c1",
            task_title="Call Ann",
        ),
        delivery(
            "t1",
            "task.completed",
            entity_type="task",
            location=location,
            delivery_id="3",
            customer_id="c1",
        ),
        delivery(
            "c2",
            "customer.created",
            location=location,
            delivery_id="4",
            first_name="Bo",
            email="not-an-email",
        ),
    ]


async def test_worker_syncs_to_the_sandbox_exactly_once(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    location = sandbox_asgi.location_id
    assert send(engine_store, *_deliveries(location)) == [True, False, True, True, True]
    client = GHLClient(
        base_url=sandbox_asgi.url,
        tokens=StaticTokens({location: sandbox_asgi.token}),
        transport=sandbox_asgi.transport(),
        clock=engine_clock,
    )
    config = AppConfig.default()
    worker = Worker(
        engine_store,
        client,
        Mapper(config, clock=engine_clock),
        config,
        clock=engine_clock,
        concurrency=4,
    )
    assert await worker.run_once() == 3  # the three entities, in one batch
    assert await worker.run_once() == 0
    await client.aclose()

    stored = sandbox_asgi.state.location(location)
    assert stored is not None
    ann = [c for c in stored.contacts.values() if c.get("email") == "ann@example.com"]
    assert len(ann) == 1
    tasks = [t for t in stored.tasks.values() if t.get("title") == "Call Ann"]
    assert len(tasks) == 1 and tasks[0].get("completed") is True
    assert work_row(engine_store, "c1", location)["status"] == "done"
    assert work_row(engine_store, "t1", location)["status"] == "done"
    assert work_row(engine_store, "c2", location)["status"] == "dead"
    assert count(engine_store, dead_letters) == 1
    with engine_store.connect() as conn:
        actions = set(conn.execute(sa.select(audit_log.c.action)).scalars())
    assert actions == {"created", "completed", "dead"}  # no retry: the contact went first
