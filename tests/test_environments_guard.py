"""Issue 12 §3: the store records the environment of each location, DripJobs connection and
GHL token, and a worker never sends one environment's events with another's credentials: the
event is dead-lettered with the reason, and GHL is not called. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.dripjobs._keys import fold_keys
from ghlsync.engine import Delivery, accept
from ghlsync.engine._worker import Worker
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._environment import claim_environment, recorded_environments
from ghlsync.engine.locations._rows import register_location
from ghlsync.engine.queue._dlq import list_dead_letters
from ghlsync.ghl._crypto import TokenCipher
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.store import begin_immediate
from ghlsync.store._tables import ghl_connections
from ghlsync.store._tables_locations import dripjobs_connections
from tests._engine_flows_kit import CUSTOMER, make_client
from tests._sandbox import InProcessSandbox


def _config(environment: str | None) -> AppConfig:
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["environment"] = environment
    return AppConfig.model_validate(raw)


def _deliver(engine: sa.Engine, location: str) -> None:
    payload: dict[str, Any] = dict(CUSTOMER)
    delivery = Delivery(
        connection_id="conn1",
        location_id=location,
        event="customer.created",
        delivery_id="d1",
        payload=fold_keys(payload),
        entity_type="contact",
        source_id=str(payload["customer_id"]),
        source_updated_at=None,
        received_at=1_699_999_000.0,
    )
    with begin_immediate(engine) as conn:
        accept(conn, delivery)


async def _run(engine: sa.Engine, sandbox: InProcessSandbox, running: str | None) -> None:
    config = _config(running)
    directory = LocationDirectory(engine, config)
    loc = sandbox.location_id
    async with make_client(sandbox.url, sandbox.token, loc, sandbox.transport()) as client:
        worker = Worker(engine, client, Mapper(config), config, locations=directory)
        worker.clock = FakeClock()
        while await worker.run_once():
            pass


def _ghl_calls(sandbox: InProcessSandbox) -> int:
    return len([r for r in sandbox.state.requests if not r["path"].startswith("/_sandbox")])


async def test_a_sandbox_location_is_never_sent_by_a_production_worker(
    flows_store: sa.Engine, loc_cipher: TokenCipher, sandbox_asgi: InProcessSandbox
) -> None:
    loc = sandbox_asgi.location_id
    register_location(flows_store, loc_cipher, loc, now=1.0)
    claim_environment(flows_store, loc, "sandbox")
    _deliver(flows_store, loc)

    await _run(flows_store, sandbox_asgi, "production")

    [letter] = list_dead_letters(flows_store)
    assert letter.reason.startswith(f"location {loc}: its location belongs to the 'sandbox'")
    assert "runs 'production'" in letter.reason and "--env sandbox" in letter.reason
    assert _ghl_calls(sandbox_asgi) == 0  # nothing was sent with production's credentials


async def test_a_token_stored_by_another_environment_is_refused_too(
    flows_store: sa.Engine, loc_cipher: TokenCipher, sandbox_asgi: InProcessSandbox
) -> None:
    loc = sandbox_asgi.location_id
    TokenVault(flows_store, loc_cipher).save_private(loc, Secret("pit-production-token"))
    claim_environment(flows_store, loc, "production")  # no location row: only the token
    _deliver(flows_store, loc)

    await _run(flows_store, sandbox_asgi, "sandbox")

    [letter] = list_dead_letters(flows_store)
    assert "its GHL token belongs to the 'production' environment" in letter.reason
    assert _ghl_calls(sandbox_asgi) == 0


async def test_the_environment_that_owns_the_location_sends_it(
    flows_store: sa.Engine, loc_cipher: TokenCipher, sandbox_asgi: InProcessSandbox
) -> None:
    loc = sandbox_asgi.location_id
    register_location(flows_store, loc_cipher, loc, now=1.0)
    claim_environment(flows_store, loc, "sandbox")
    _deliver(flows_store, loc)

    await _run(flows_store, sandbox_asgi, "sandbox")

    assert list_dead_letters(flows_store) == []
    location = sandbox_asgi.state.location(loc)
    assert location is not None and len(location.contacts) == 1


async def test_rows_from_before_environments_serve_any_and_are_claimed_once(
    flows_store: sa.Engine, loc_cipher: TokenCipher, sandbox_asgi: InProcessSandbox
) -> None:
    loc = sandbox_asgi.location_id
    register_location(flows_store, loc_cipher, loc, now=1.0)
    _deliver(flows_store, loc)

    await _run(flows_store, sandbox_asgi, "production")  # NULL: not refused
    claim_environment(flows_store, loc, "production")
    claim_environment(flows_store, loc, "sandbox")  # a recorded one never changes

    assert list_dead_letters(flows_store) == []
    assert recorded_environments(flows_store, loc).location == "production"
    with flows_store.connect() as conn:
        stamped = conn.execute(sa.select(dripjobs_connections.c.environment)).scalars().all()
        tokens = conn.execute(sa.select(ghl_connections.c.environment)).scalars().all()
    assert stamped == ["production"] and tokens == []
