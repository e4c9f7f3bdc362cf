"""The real worker driving the real flows: deliveries in, GHL records and audit rows out."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.dripjobs._keys import fold_keys
from ghlsync.engine import Delivery, accept
from ghlsync.engine._worker import Worker
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import audit_log
from tests._engine_flows_kit import CUSTOMER, make_client
from tests._sandbox import InProcessSandbox


def _deliver(engine: sa.Engine, location: str, n: int, event: str, **payload: Any) -> None:
    mapper = Mapper(AppConfig.default())
    key = mapper.entity_key(event, payload)
    delivery = Delivery(
        connection_id="conn1",
        location_id=location,
        event=event,
        delivery_id=f"d{n}",
        payload=fold_keys(payload),
        entity_type=key.type,
        source_id=key.source_id,
        source_updated_at=None,
        received_at=1_699_999_000.0 + n,  # before the worker clock: available now
    )
    with begin_immediate(engine) as conn:
        accept(conn, delivery)


async def test_worker_syncs_deliveries_through_the_flows(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    loc = sandbox_asgi.location_id
    task = {"customer_id": "C1", "task_id": "T1", "task_title": "Call", "task_due": "2026-12-01"}
    async with make_client(
        sandbox_asgi.url, sandbox_asgi.token, loc, sandbox_asgi.transport()
    ) as client:
        config = AppConfig.default()
        worker = Worker(flows_store, client, Mapper(config), clock=FakeClock())
        _deliver(flows_store, loc, 1, "customer.created", **CUSTOMER)
        while await worker.run_once():
            pass
        _deliver(flows_store, loc, 2, "task.created", **task)
        _deliver(flows_store, loc, 3, "customer.updated", **CUSTOMER)  # nothing new
        while await worker.run_once():
            pass

    location = sandbox_asgi.state.location(loc)
    assert location is not None
    [contact] = location.contacts.values()
    [ghl_task] = location.tasks.values()
    assert ghl_task["contactId"] == contact["id"]
    with flows_store.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.entity_type, audit_log.c.action, audit_log.c.calls).order_by(
                audit_log.c.id
            )
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("contact", "created", 2),  # the upsert and its tags
        ("contact", "skipped", 0),  # the no-op update
        ("task", "created", 1),
    ]
