"""Two-way sync test kit: a catch-hook receiver, an independent Standard Webhooks verifier,
and a harness (store + worker on the in-process GHL sandbox + outbox sender)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Worker
from ghlsync.engine.flows.to_dripjobs._events import ghl_delivery, is_ghl_event
from ghlsync.engine.outbox._sender import OutboxSender
from ghlsync.engine.queue._inbox import Delivery, accept
from ghlsync.mapping import Mapper, load_config
from ghlsync.mapping._config import AppConfig
from ghlsync.sandbox import SandboxState
from ghlsync.store import begin_immediate
from ghlsync.store._tables_twoway import writeback_outbox
from tests._engine_flows_kit import make_client
from tests._sandbox import InProcessSandbox

SECRET = "whsec_" + base64.b64encode(b"two-way-test-secret-32-bytes!!!!").decode()
HOOK = "https://hooks.zapier.test/hooks/catch/1/"
ACTIONS = ("create_lead", "create_appointment_request", "update_appointment", "move_deal")


def spec_verify(secret: str, headers: dict[str, str], body: bytes, now: int) -> bool:
    """Standard Webhooks verification written from the spec text, independent of ghlsync:
    the key is base64 after `whsec_`; the signed content is `{id}.{timestamp}.{body}`;
    the header is a space-delimited list of `v1,<base64 HMAC-SHA256>`; the timestamp must be
    within five minutes."""
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(now - int(stamp)) > 300:
        return False
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        part.split(",", 1)[1] == expected
        for part in headers["webhook-signature"].split(" ")
        if part.startswith("v1,")
    )


@dataclass
class CatchHook:
    """A Zapier Catch Hook stand-in: verifies, dedupes by webhook-id, records; can fail."""

    now: Callable[[], float]
    received: list[dict[str, Any]] = field(default_factory=list)  # every verified POST
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # webhook-id -> body
    faults: list[int | str] = field(default_factory=list)  # next answers: 429, 500, "timeout"
    attempts: list[str] = field(default_factory=list)  # webhook-id of every verified attempt

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self._handle)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        body = request.content
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not spec_verify(SECRET, headers, body, int(self.now())):
            return httpx2.Response(401)
        self.attempts.append(headers["webhook-id"])
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "timeout":
                raise httpx2.ReadTimeout("lost", request=request)
            return httpx2.Response(int(fault), headers={"retry-after": "2"})
        document = json.loads(body)
        self.received.append({"url": str(request.url), "headers": headers, "body": document})
        self.applied.setdefault(headers["webhook-id"], document)
        return httpx2.Response(200, json={"status": "success"})

    def actions(self) -> list[str]:
        return [doc["type"] for doc in self.applied.values()]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _epoch(value: object) -> float | None:
    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None


def twoway_config(database_url: str, **extra: str) -> AppConfig:
    env = {f"GHLSYNC_WRITEBACK_URL_{a.upper()}": HOOK + a for a in ACTIONS}
    env.update(GHLSYNC_WRITEBACK_SECRET=SECRET, GHLSYNC_DATABASE_URL=database_url, **extra)
    return load_config(None, environ=env)


@dataclass
class TwoWay:
    """GHL sandbox (in process) ⇄ worker ⇄ catch hook, on one store."""

    engine: sa.Engine
    sandbox: InProcessSandbox
    config: AppConfig
    clock: FakeClock
    hook: CatchHook
    worker: Worker
    sender: OutboxSender
    ghl_events: list[dict[str, Any]]

    def reconfigure(self, config: AppConfig) -> None:
        """Run the worker and the sender with another config from now on."""
        self.config = config
        self.worker.config, self.worker.mapper = config, Mapper(config)
        self.sender.settings = config.writeback

    async def ghl_user(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A change made in GHL by someone else (a user, a form): through the API."""
        version = "2021-04-15" if path.startswith("/calendars") else "2021-07-28"
        return await self.worker.client.request(
            method, path, key=self.sandbox.location_id, version=version, json=body
        )

    def dripjobs(self, event: str, source_id: str, **payload: Any) -> bool:
        """A DripJobs delivery into the inbox (what the receiver does)."""
        mapper = self.worker.mapper
        body = {"customer_id": source_id, **payload}
        if "updated_at" in body and isinstance(body["updated_at"], float):
            body["updated_at"] = _iso(body["updated_at"])
        key = mapper.entity_key(event, body)
        item = Delivery(
            connection_id="conn1",
            location_id=self.sandbox.location_id,
            event=event,
            delivery_id=None,
            payload=body,
            entity_type=key.type,
            source_id=key.source_id,
            source_updated_at=_epoch(body.get("updated_at")),
            received_at=self.clock.now(),
        )
        with begin_immediate(self.engine) as conn:
            return accept(conn, item)

    def ghl(self, event: dict[str, Any]) -> bool:
        """A verified GHL event into the inbox (what `POST /hooks/ghl` does)."""
        with begin_immediate(self.engine) as conn:
            return accept(conn, ghl_delivery(event, received_at=self.clock.now()))

    def forward_ghl_events(self) -> int:
        """Deliver the webhooks the sandbox emitted since the last call."""
        events, self.ghl_events[:] = list(self.ghl_events), []
        taken = [e for e in events if is_ghl_event(str(e.get("type")))]  # as /hooks/ghl does
        for event in taken:
            self.ghl(event)
        return len(taken)

    async def settle(self, rounds: int = 20) -> None:
        """Run worker batches, GHL webhooks and the outbox until nothing moves."""
        for _ in range(rounds):
            moved = await self.worker.run_once()
            moved += self.forward_ghl_events()
            moved += await self.sender.drain_once()
            if not moved:
                self.clock.advance(120.0)  # retries and leases come due
                moved = await self.worker.run_once() + await self.sender.drain_once()
                if not moved:
                    return

    def outbox(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(writeback_outbox).order_by(writeback_outbox.c.created_at))
            return [dict(r._mapping) for r in rows]

    def ghl_contacts(self) -> list[dict[str, Any]]:
        location = self.sandbox.state.location(self.sandbox.location_id)
        assert location is not None
        return list(location.contacts.values())

    def ghl_writes(self) -> int:
        """Write calls GHL received (POST/PUT/DELETE)."""
        return sum(1 for r in self.sandbox.state.requests if r.get("method") != "GET")


def with_writeback(config: AppConfig, **changes: Any) -> AppConfig:
    """The config with `writeback` keys replaced (e.g. `default_owner="ghl"`)."""
    return config.model_copy(update={"writeback": config.writeback.model_copy(update=changes)})


@pytest.fixture
async def tw(engine_store: sa.Engine, database_url: str) -> AsyncIterator[TwoWay]:
    clock = FakeClock(1_800_000_000.0)
    sandbox = InProcessSandbox(state=SandboxState(clock=clock))  # GHL times on the same clock
    config = twoway_config(database_url)
    config = config.model_copy(
        update={
            "ghl": config.ghl.model_copy(
                update={"location_id": sandbox.location_id, "calendar_id": sandbox.calendar_id}
            )
        }
    )
    hook = CatchHook(now=clock.now)
    events: list[dict[str, Any]] = []
    sandbox.state.event_hook = events.append
    sender = OutboxSender(engine_store, config.writeback, clock=clock, transport=hook.transport())
    async with make_client(
        sandbox.url, sandbox.token, sandbox.location_id, sandbox.transport()
    ) as client:
        worker = Worker(
            engine_store, client, Mapper(config), config, clock=clock, outbox=sender, listen=False
        )
        yield TwoWay(engine_store, sandbox, config, clock, hook, worker, sender, events)
