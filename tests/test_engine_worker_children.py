"""A task, note or appointment from DripJobs starts with the other items of its batch: it waits
only for an item of the worker that is syncing its own contact (and then runs once more), not
for every new contact of the batch."""

from __future__ import annotations

import asyncio
import contextlib

import httpx2
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Worker
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from tests._engine_kit import delivery, send, work_row
from tests._sandbox import InProcessSandbox

HOLD_S = 5.0  # how long a held contact create waits for the task (the old order: all of it)


class _HoldContact(httpx2.AsyncBaseTransport):
    """The sandbox; the create of contact `held` waits until a task is posted (at most
    HOLD_S), and the order of the two is written down."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, held: str) -> None:
        self._inner, self._held = inner, held
        self.task_posted = asyncio.Event()
        self.order: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/tasks"):
            self.order.append("task")
            self.task_posted.set()
        elif request.method == "POST" and self._held.encode() in request.content:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.task_posted.wait(), HOLD_S)
            self.order.append("held contact")
        return await self._inner.handle_async_request(request)


def _worker(
    engine: sa.Engine,
    clock: FakeClock,
    sandbox: InProcessSandbox,
    transport: httpx2.AsyncBaseTransport,
) -> tuple[Worker, GHLClient]:
    client = GHLClient(
        base_url=sandbox.url,
        tokens=StaticTokens({sandbox.location_id: sandbox.token}),
        transport=transport,
        clock=clock,
    )
    config = AppConfig.default()
    return Worker(engine, client, Mapper(config, clock=clock), config, clock=clock), client


def _task(location: str, customer: str) -> object:
    task = delivery(
        "t1",
        "task.created",
        entity_type="task",
        location=location,
        delivery_id="t",
        task_title="Call",
    )
    task.payload["customer_id"] = customer  # no fields of the customer's own: a lookup
    return task


async def test_a_task_of_a_known_customer_does_not_wait_for_a_new_contact_of_its_batch(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    location = sandbox_asgi.location_id
    send(engine_store, delivery("c1", "customer.created", location=location, email="ann@x.io"))
    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, sandbox_asgi.transport())
    assert await worker.run_once() == 1
    await client.aclose()

    send(engine_store, delivery("c2", "customer.created", location=location, email="bo@x.io"))
    send(engine_store, _task(location, "c1"))
    held = _HoldContact(sandbox_asgi.transport(), "bo@x.io")
    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, held)
    assert await worker.run_once() == 2  # one batch
    await client.aclose()
    assert held.order == ["task", "held contact"]  # the task went while the contact was held
    assert work_row(engine_store, "t1", location)["status"] == "done"
    assert work_row(engine_store, "c2", location)["status"] == "done"


async def test_a_task_of_a_new_customer_of_its_batch_waits_for_it_and_runs_once_more(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    """The task finds no contact, waits for the batch's item that creates it, and is created
    under that contact in the same run: no retry, no second contact."""
    location = sandbox_asgi.location_id
    send(engine_store, delivery("c2", "customer.created", location=location, email="bo@x.io"))
    send(engine_store, _task(location, "c2"))
    seen = _HoldContact(sandbox_asgi.transport(), "nobody@x.io")  # holds nothing
    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, seen)
    assert await worker.run_once() == 2
    await client.aclose()
    stored = sandbox_asgi.state.location(location)
    assert stored is not None and len(stored.contacts) == 1
    [task] = stored.tasks.values()
    assert task.get("contactId") == next(iter(stored.contacts))
    assert seen.order == ["task"]  # created once
    row = work_row(engine_store, "t1", location)
    assert (row["status"], row["attempts"]) == ("done", 0)
