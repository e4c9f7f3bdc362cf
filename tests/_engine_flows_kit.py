"""Helpers for the flows tests: a migrated store, the sandbox, a GHL client and a mapper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.flows.to_ghl._dispatch import plan, sync_event
from ghlsync.engine.flows.to_ghl._model import EntityOutcome, FlowContext
from ghlsync.engine.flows.to_ghl._plan import PlannedCall
from ghlsync.engine.state._idmap import IdMapRow
from ghlsync.engine.state._idmap import get as get_row
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.mapping import AppConfig, MappedEvent, Mapper
from ghlsync.sandbox import SandboxState
from ghlsync.store import create_engine, migrate
from tests._sandbox import InProcessSandbox

CUSTOMER: dict[str, Any] = {
    "customer_id": "C1",
    "first_name": "Ann",
    "last_name": "Lee",
    "email": "ann@example.com",
    "phone": "+1 415-555-2671",
    "lead_source": "Google",
}


@pytest.fixture
def flows_store(database_url: str) -> Iterator[sa.Engine]:
    """A migrated store on SQLite and PostgreSQL."""
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@dataclass
class Flow:
    """One location's flows against the in-process sandbox, with helpers to drive and inspect."""

    engine: sa.Engine
    state: SandboxState
    ctx: FlowContext
    mapper: Mapper

    def event(self, name: str, **payload: Any) -> MappedEvent:
        """Map a DripJobs event with the default preset."""
        return self.mapper.map(name, payload)

    async def sync(self, name: str, **payload: Any) -> list[EntityOutcome]:
        """Map and sync one event."""
        return await sync_event(self.ctx, self.event(name, **payload))

    async def plan(self, name: str, **payload: Any) -> list[PlannedCall]:
        """Map and plan one event."""
        return await plan(self.ctx, self.event(name, **payload))

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every API call the sandbox saw, admin calls excluded."""
        return [
            (r["method"], r["path"])
            for r in list(self.state.requests)
            if not r["path"].startswith("/_sandbox")
        ]

    def records(self, kind: str) -> list[dict[str, Any]]:
        """The sandbox location's contacts / tasks / notes / appointments."""
        location = self.state.location(self.ctx.location_id)
        assert location is not None
        return list(getattr(location, kind).values())

    def row(self, entity_type: str, source_id: str) -> IdMapRow | None:
        """The ID-map row of one entity."""
        with self.engine.connect() as conn:
            return get_row(conn, self.ctx.location_id, entity_type, source_id)


def make_client(
    url: str,
    token: str,
    location_id: str,
    transport: httpx2.AsyncBaseTransport | None = None,
    timeout: float = 30.0,
) -> GHLClient:
    """A GHL client on a fake clock (retries don't wait) with the location's static token."""
    return GHLClient(
        base_url=url,
        tokens=StaticTokens({location_id: token}),
        transport=transport,
        clock=FakeClock(),
        timeout=timeout,
    )


@pytest.fixture
async def flow(flows_store: sa.Engine, sandbox_asgi: InProcessSandbox) -> AsyncIterator[Flow]:
    """Flows wired to the in-process sandbox (ASGI transport)."""
    async with make_client(
        sandbox_asgi.url, sandbox_asgi.token, sandbox_asgi.location_id, sandbox_asgi.transport()
    ) as client:
        yield _flow(
            flows_store,
            sandbox_asgi.state,
            client,
            sandbox_asgi.location_id,
            sandbox_asgi.calendar_id,
        )


def _flow(
    store: sa.Engine, state: SandboxState, client: GHLClient, location_id: str, calendar_id: str
) -> Flow:
    config = AppConfig.default()
    ctx = FlowContext(store, client, location_id, calendar_id, config, FakeClock())
    return Flow(store, state, ctx, Mapper(config))


def _read_timeout(request: httpx2.Request) -> BaseException:
    return httpx2.ReadTimeout("answer lost (test)", request=request)


def lose_answer(
    inner: httpx2.AsyncBaseTransport,
    when: Callable[[httpx2.Request], bool],
    error: Callable[[httpx2.Request], BaseException] = _read_timeout,
) -> httpx2.MockTransport:
    """A transport that forwards every request, but for the first one `when` picks it raises
    `error` (a `ReadTimeout` by default) after the sandbox applied it: the write happened,
    the answer was lost."""
    tripped: list[bool] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        response = await inner.handle_async_request(request)
        await response.aread()
        if not tripped and when(request):
            tripped.append(True)
            raise error(request)
        return response

    return httpx2.MockTransport(handler)


@asynccontextmanager
async def with_transport(flow: Flow, transport: httpx2.AsyncBaseTransport) -> AsyncIterator[Flow]:
    """The same store and sandbox, with a client on another transport."""
    location_id = flow.ctx.location_id
    async with make_client(flow_base_url(), "sandbox-token", location_id, transport) as client:
        yield _flow(flow.engine, flow.state, client, location_id, flow.ctx.calendar_id or "")


def flow_base_url() -> str:
    """The base URL in-process clients use (the host is never resolved)."""
    return "https://services.leadconnectorhq.com"
