"""End to end: the real receiver and worker against the sandbox, while GHL installs and
uninstalls a second location. Location A keeps syncing throughout; B is installed (its token
minted from the agency token), synced, then uninstalled: its new deliveries are refused and
its pending work is not sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync.engine import Worker
from ghlsync.engine.locations._rows import ConnectionRow, list_connections, set_location_options
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import Mapper
from ghlsync.sandbox import SandboxServer
from ghlsync.server import create_app, serve_in_thread
from ghlsync.server._run import build_worker
from ghlsync.store._tables_engine import work_items
from tests._locations_kit import OVERRIDE_B, base_config, connect_agency, sandbox_oauth

WAIT_SECONDS = 30.0  # a bound against hanging, not a timing assertion


@dataclass
class Running:
    """The receiver on loopback, the sandbox, and a way to (re)start the worker."""

    http: httpx2.AsyncClient
    admin: httpx2.AsyncClient
    sandbox: SandboxServer
    services: LocationServices
    engine: sa.Engine
    cipher: TokenCipher
    start_worker: Callable[[], tuple[asyncio.Event, asyncio.Task[None]]]

    async def send(self, connection: ConnectionRow | None, **body: str) -> httpx2.Response:
        if connection is None:
            path, secret = "/hooks/dripjobs/customer.created", "default-secret-value"
        else:
            path = f"/hooks/dripjobs/{connection.connection_id}/customer.created"
            secret = connection.secret.reveal()
        headers = {"Authorization": f"Bearer {secret}"}
        return await self.http.post(path, json=body, headers=headers)

    def emails(self, location: str) -> set[str]:
        with self.sandbox.state.lock:
            found = self.sandbox.state.locations.get(location)
            contacts = list(found.contacts.values()) if found else []
        return {str(c.get("email")) for c in contacts}

    def tags(self, location: str) -> set[str]:
        with self.sandbox.state.lock:
            contacts = list(self.sandbox.state.locations[location].contacts.values())
        return {str(tag) for contact in contacts for tag in contact.get("tags") or []}

    async def synced(self, location: str, *emails: str) -> None:
        for _ in range(int(WAIT_SECONDS / 0.02)):
            if set(emails) <= self.emails(location):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{emails} never reached {location}: {self.emails(location)}")


@pytest.fixture
async def running(
    locations_store: sa.Engine, loc_cipher: TokenCipher, sandbox: SandboxServer
) -> AsyncIterator[Running]:
    async with httpx2.AsyncClient(base_url=sandbox.url) as admin:
        public_key = (await admin.get("/_sandbox/webhook-public-key")).text
        config = base_config(
            base_url=sandbox.url,
            location_id=sandbox.location_id,
            token=sandbox.token,
            calendar_id=sandbox.calendar_id,
            webhook_public_key=public_key,
        )
        oauth = sandbox_oauth(sandbox)
        vault = TokenVault(locations_store, loc_cipher, oauth)
        await connect_agency(sandbox, vault)
        mapper = Mapper(config)
        services = LocationServices.build(
            locations_store, config, mapper=mapper, vault=vault, cipher=loc_cipher, oauth=oauth
        )
        workers: list[tuple[asyncio.Event, asyncio.Task[None], Worker]] = []

        def start_worker() -> tuple[asyncio.Event, asyncio.Task[None]]:
            worker = build_worker(locations_store, config, mapper, services=services)
            stop = asyncio.Event()
            task = asyncio.ensure_future(worker.run(stop))
            workers.append((stop, task, worker))
            return stop, task

        app = create_app(
            engine=locations_store,
            config=config,
            mapper=mapper,
            locations=services.directory,
            installer=services.installer,
        )
        with serve_in_thread(app) as url:
            await admin.put("/_sandbox/webhooks", json={"url": f"{url}/hooks/ghl"})
            async with httpx2.AsyncClient(base_url=url) as http:
                try:
                    yield Running(
                        http, admin, sandbox, services, locations_store, loc_cipher, start_worker
                    )
                finally:
                    for stop, task, worker in workers:
                        stop.set()
                        await task
                        await worker.client.aclose()


def _b_connection(running: Running) -> ConnectionRow:
    [connection] = list_connections(running.engine, running.cipher, "loc_b")
    return connection


def _status(engine: sa.Engine, location: str, source_id: str) -> tuple[str, int]:
    cols = work_items.c
    query = sa.select(cols.status, cols.attempts).where(
        cols.location_id == location, cols.source_id == source_id
    )
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return str(row.status), int(row.attempts)


def _calls_not_for(sandbox: SandboxServer, location: str, since: int) -> list[dict[str, Any]]:
    with sandbox.state.lock:
        log = list(sandbox.state.requests[since:])
    return [entry for entry in log if entry.get("location") != location]


async def test_install_sync_uninstall_while_another_location_keeps_syncing(
    running: Running,
) -> None:
    stop, task = running.start_worker()
    assert (await running.send(None, customer_id="a1", email="a1@example.com")).status_code == 202
    await running.synced("loc_sandbox", "a1@example.com")

    installed = await running.admin.post("/_sandbox/install", json={"locationId": "loc_b"})
    assert installed.json()["delivery"]["status"] == 200
    b = _b_connection(running)
    set_location_options(running.engine, "loc_b", now=1.0, mapping_override=OVERRIDE_B)
    running.services.directory.invalidate("loc_b")
    answers = [
        await running.send(b, customer_id="b1", email="b1@example.com"),
        await running.send(None, customer_id="a2", email="a2@example.com"),
        await running.send(b, customer_id="b2", email="b2@example.com"),
    ]
    assert [a.status_code for a in answers] == [202, 202, 202]
    await running.synced("loc_b", "b1@example.com", "b2@example.com")
    await running.synced("loc_sandbox", "a2@example.com")

    # Hold the worker so B has pending work when the uninstall arrives.
    stop.set()
    await task
    assert (await running.send(b, customer_id="b3", email="b3@example.com")).status_code == 202
    since = len(running.sandbox.state.requests)
    uninstalled = await running.admin.post("/_sandbox/uninstall", json={"locationId": "loc_b"})
    assert uninstalled.json()["delivery"]["status"] == 200

    refused = await running.send(b, customer_id="b4", email="b4@example.com")
    assert (refused.status_code, refused.json()["error"]) == (401, "connection_revoked")
    running.start_worker()
    assert (await running.send(None, customer_id="a3", email="a3@example.com")).status_code == 202
    await running.synced("loc_sandbox", "a3@example.com")

    assert running.emails("loc_b") == {"b1@example.com", "b2@example.com"}
    # Nothing but A's calls since the uninstall; B's item was never even claimed.
    assert _calls_not_for(running.sandbox, "loc_sandbox", since) == []
    assert _status(running.engine, "loc_b", "b3") == ("pending", 0)  # kept for a reinstall
    assert running.emails("loc_sandbox") >= {"a1@example.com", "a2@example.com", "a3@example.com"}
    # B's mapping override reached GHL for B's contacts only.
    assert running.tags("loc_b") == {"agency-b", "dripjobs"}
    assert "agency-b" not in running.tags("loc_sandbox")
