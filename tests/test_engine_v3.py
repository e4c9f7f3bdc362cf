"""The engine syncs through a GHL API v3 connection: same flows, v3 on the wire.

A DripJobs customer, task and note go through the real worker into the sandbox with the
location on API v3 (from the config, or stored on the location row), on SQLite and
PostgreSQL. Every call is checked against GHL's v3 specs (`apps/v3/<family>-v3.json`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.dripjobs._keys import fold_keys
from ghlsync.engine import Delivery, accept
from ghlsync.engine._worker import Worker
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import register_location, set_location_options
from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import audit_log
from tests._engine_flows_kit import CUSTOMER
from tests._openapi import load_spec, request_errors, response_errors
from tests._sandbox import InProcessSandbox

Exchange = tuple[httpx2.Request, httpx2.Response]


def _deliver(engine: sa.Engine, location: str, n: int, event: str, **payload: Any) -> None:
    key = Mapper(AppConfig.default()).entity_key(event, payload)
    delivery = Delivery(
        connection_id="conn1",
        location_id=location,
        event=event,
        delivery_id=f"d{n}",
        payload=fold_keys(payload),
        entity_type=key.type,
        source_id=key.source_id,
        source_updated_at=None,
        received_at=1_699_999_000.0 + n,
    )
    with begin_immediate(engine) as conn:
        accept(conn, delivery)


def _recording(box: InProcessSandbox, seen: list[Exchange]) -> httpx2.MockTransport:
    inner = box.transport()

    async def handle(request: httpx2.Request) -> httpx2.Response:
        response = await inner.handle_async_request(request)
        await response.aread()
        seen.append((request, response))
        return response

    return httpx2.MockTransport(handle)


def _with_api(config: AppConfig, api: str) -> AppConfig:
    return config.model_copy(update={"ghl": config.ghl.model_copy(update={"api_version": api})})


async def _sync_customer_task_note(
    engine: sa.Engine, box: InProcessSandbox, config: AppConfig, seen: list[Exchange]
) -> None:
    loc = box.location_id
    directory = LocationDirectory(engine, config)
    client = GHLClient(
        base_url=box.url,
        tokens=StaticTokens({loc: box.token}),
        transport=_recording(box, seen),
        clock=FakeClock(),
        api_version=directory.api_version,
    )
    async with client:
        worker = Worker(engine, client, Mapper(config), config, clock=FakeClock())
        _deliver(engine, loc, 1, "customer.created", **CUSTOMER)
        while await worker.run_once():
            pass
        task = {"customer_id": "C1", "task_id": "T1", "task_title": "Call"}
        task["task_due"] = "2026-12-01"
        _deliver(engine, loc, 2, "task.created", **task)
        _deliver(engine, loc, 3, "note.created", customer_id="C1", note_id="N1", note_body="Gate")
        _deliver(engine, loc, 4, "customer.updated", **{**CUSTOMER, "city": "Austin"})
        while await worker.run_once():
            pass


def _assert_synced(engine: sa.Engine, box: InProcessSandbox) -> None:
    location = box.state.location(box.location_id)
    assert location is not None
    [contact] = location.contacts.values()
    [task] = location.tasks.values()
    [note] = location.notes.values()
    assert contact["email"] == CUSTOMER["email"] and contact["city"] == "Austin"
    assert task["contactId"] == contact["id"] and task["title"] == "Call"
    assert note["contactId"] == contact["id"] and note["body"] == "Gate"
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.entity_type, audit_log.c.action)).all()
    assert sorted(tuple(r) for r in rows) == [
        ("contact", "created"),
        ("contact", "updated"),
        ("note", "created"),
        ("task", "created"),
    ]


def _assert_v3_conformant(spec_dir: Path, seen: list[Exchange]) -> None:
    assert len(seen) >= 4
    problems: list[str] = []
    for request, response in seen:
        family = request.url.path.strip("/").split("/")[0]
        spec = load_spec(spec_dir, f"v3/{family}-v3")
        where = f"{request.method} {request.url.path} -> {response.status_code}"
        assert request.headers["Version"] == "v3", where
        assert response.status_code < 300, f"{where}: {response.text}"
        problems += [f"{where}: {e}" for e in request_errors(spec, request)]
        problems += [f"{where}: {e}" for e in response_errors(spec, request, response)]
    assert problems == [], "\n".join(problems)


async def test_worker_syncs_customer_task_and_note_through_a_v3_connection(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox, ghl_v3_spec_dir: Path
) -> None:
    seen: list[Exchange] = []
    config = _with_api(AppConfig.default(), "v3")
    await _sync_customer_task_note(flows_store, sandbox_asgi, config, seen)
    _assert_synced(flows_store, sandbox_asgi)
    _assert_v3_conformant(ghl_v3_spec_dir, seen)


async def test_a_location_stored_on_v3_overrides_a_v2_config(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox, ghl_v3_spec_dir: Path
) -> None:
    loc = sandbox_asgi.location_id
    register_location(flows_store, TokenCipher([generate_key()]), loc, now=time.time())
    assert set_location_options(flows_store, loc, now=time.time(), api_version="v3")
    seen: list[Exchange] = []
    await _sync_customer_task_note(flows_store, sandbox_asgi, AppConfig.default(), seen)
    _assert_synced(flows_store, sandbox_asgi)
    _assert_v3_conformant(ghl_v3_spec_dir, seen)
    directory = LocationDirectory(flows_store, AppConfig.default())
    assert directory.api_version(loc) == "v3" and directory.api_version("other") == "v2"
