"""The sync states a work item's flows record are written in the transaction that settles the
item (beside its work row and audit lines), read back by the item's own later events
meanwhile, and not written when another worker took the item over."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Worker
from ghlsync.engine.state import _syncstate
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from tests._engine_kit import delivery, send, steal_lease, work_row
from tests._sandbox import InProcessSandbox

Hook = Callable[[httpx2.Request], httpx2.Response | None]


class _Hooked(httpx2.AsyncBaseTransport):
    """The sandbox, with `hook` seeing each request first (its answer, if any, is sent)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, hook: Hook) -> None:
        self._inner, self._hook = inner, hook

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        answer = self._hook(request)
        return answer if answer is not None else await self._inner.handle_async_request(request)


def _worker(
    engine: sa.Engine, clock: FakeClock, sandbox: InProcessSandbox, hook: Hook
) -> tuple[Worker, GHLClient]:
    client = GHLClient(
        base_url=sandbox.url,
        tokens=StaticTokens({sandbox.location_id: sandbox.token}),
        transport=_Hooked(sandbox.transport(), hook),
        clock=clock,
    )
    config = AppConfig.default()
    worker = Worker(engine, client, Mapper(config, clock=clock), config, clock=clock)
    return worker, client


def _first_name(engine: sa.Engine, location: str, source_id: str = "c1") -> object:
    with engine.connect() as conn:
        state = _syncstate.get(conn, location, "contact", source_id)
    assert state is not None
    return state.snapshot["body"].get("firstName")


def _is_contact_put(request: httpx2.Request) -> bool:
    return request.method == "PUT" and request.url.path.count("/") == 2


async def _ann_synced(engine: sa.Engine, clock: FakeClock, sandbox: InProcessSandbox) -> None:
    location = sandbox.location_id
    ann = delivery("c1", "customer.created", location=location, delivery_id="1", email="ann@x.io")
    send(engine, delivery(**{**_fields(ann), "first_name": "Ann"}))
    worker, client = _worker(engine, clock, sandbox, lambda _r: None)
    assert await worker.run_once() == 1
    await client.aclose()
    assert _first_name(engine, location) == "Ann"


def send_task(engine: sa.Engine, location: str, *, delivery_id: str, first_name: str) -> None:
    """A `task.created` of task t1 of customer c1 (ann@x.io), queued."""
    task = delivery(
        "t1",
        "task.created",
        entity_type="task",
        location=location,
        delivery_id=delivery_id,
        task_title="Call Ann",
        first_name=first_name,
        email="ann@x.io",
    )
    task.payload["customer_id"] = "c1"
    send(engine, task)


def _fields(d: object) -> dict[str, object]:
    payload = dict(d.payload)  # type: ignore[attr-defined]
    source = payload.pop("customer_id")
    return {
        "source_id": source,
        "event": d.event,  # type: ignore[attr-defined]
        "location": d.location_id,  # type: ignore[attr-defined]
        "delivery_id": d.delivery_id,  # type: ignore[attr-defined]
        **payload,
    }


async def test_a_state_one_event_recorded_is_what_the_next_event_of_the_item_starts_from(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    """Two events merged in one item: the first updates GHL and records (kept for the settle);
    the second reads that state back, finds nothing new and sends nothing."""
    await _ann_synced(engine_store, engine_clock, sandbox_asgi)
    location = sandbox_asgi.location_id
    common = {"location": location, "email": "ann@x.io", "first_name": "Annie"}
    send(
        engine_store,
        delivery("c1", "customer.created", delivery_id="2", **common),
        delivery("c1", "customer.updated", delivery_id="3", **common),
    )
    assert work_row(engine_store, "c1", location)["events"].count("customer.") == 2
    puts: list[str] = []

    def count_puts(request: httpx2.Request) -> None:
        if _is_contact_put(request):
            puts.append(request.url.path)

    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, count_puts)
    assert await worker.run_once() == 1
    await client.aclose()
    assert len(puts) == 1  # the second event saw the first one's state, not the stored one
    assert _first_name(engine_store, location) == "Annie"  # written with the settle
    assert work_row(engine_store, "c1", location)["status"] == "done"


async def test_a_state_is_not_written_when_another_worker_took_the_item_over(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    """The lease is lost while the update is in flight: the settle finds the row is no longer
    this worker's, and the state this run recorded is dropped with it (the other worker's
    newer state must not be overwritten by an older one)."""
    await _ann_synced(engine_store, engine_clock, sandbox_asgi)
    location = sandbox_asgi.location_id
    send(
        engine_store,
        delivery("c1", location=location, delivery_id="2", email="ann@x.io", first_name="Annie"),
    )

    def steal_the_lease(request: httpx2.Request) -> None:
        if _is_contact_put(request):
            steal_lease(engine_store, "c1")

    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, steal_the_lease)
    assert await worker.run_once() == 1
    await client.aclose()
    contact = [c for c in sandbox_asgi.state.location(location).contacts.values()]  # type: ignore[union-attr]
    assert [c.get("firstName") for c in contact] == ["Annie"]  # GHL was updated
    assert _first_name(engine_store, location) == "Ann"  # but this worker recorded nothing
    assert work_row(engine_store, "c1", location)["lease_owner"] == "another-worker"


async def test_states_recorded_before_a_failure_are_written_with_the_retry(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    """A task event updates its contact (recorded), then the task's create fails (500): the
    item goes back for a retry, and the contact's new state is written with that settle, so
    the retry does not update the contact again."""
    await _ann_synced(engine_store, engine_clock, sandbox_asgi)
    location = sandbox_asgi.location_id
    send_task(engine_store, location, delivery_id="2", first_name="Annie")
    seen: list[str] = []

    def fail_the_task(request: httpx2.Request) -> httpx2.Response | None:
        seen.append(f"{request.method} {request.url.path}")
        if request.method == "POST" and request.url.path.endswith("/tasks"):
            return httpx2.Response(500, json={"message": "down"})
        return None

    worker, client = _worker(engine_store, engine_clock, sandbox_asgi, fail_the_task)
    assert await worker.run_once() == 1
    await client.aclose()
    assert any(s.startswith("PUT /contacts/") for s in seen)  # the contact was updated
    assert work_row(engine_store, "t1", location)["status"] == "pending"  # a retry
    assert _first_name(engine_store, location) == "Annie"  # recorded with the retry's settle
