"""Issue 8, items 12 and 13: the right advice in dead letters, a configuration error pauses
the location instead of wasting every attempt, and a dead letter writes one log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.engine import Worker, list_dead_letters
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import Mapper
from ghlsync.sandbox import SandboxServer
from ghlsync.server._run import build_worker
from ghlsync.store import create_engine, migrate
from tests._engine_kit import delivery, send, work_row
from tests._locations_kit import base_config


@pytest.fixture
def store(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _worker(store: sa.Engine, sandbox: SandboxServer, **ghl: str) -> Worker:
    config = base_config(base_url=sandbox.url, **ghl)
    mapper = Mapper(config)
    return build_worker(store, config, mapper, services=LocationServices.build(store, config))


async def test_a_refused_configured_token_says_to_fix_ghl_token_and_logs_one_line(
    store: sa.Engine, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    worker = _worker(store, sandbox, location_id=sandbox.location_id, token="pit-revoked")
    send(store, delivery("c1", location=sandbox.location_id, email="ava@example.com"))

    with caplog.at_level(logging.WARNING, logger="ghlsync.engine"):
        assert await worker.run_once() == 1
    await worker.client.aclose()

    [letter] = list_dead_letters(store)
    assert "ghl.token" in letter.reason and "GHLSYNC_GHL_TOKEN" in letter.reason
    assert "auth login" not in letter.reason
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dead letter")]
    assert f"location {sandbox.location_id}" in line
    assert "customer.updated" in line and "ghl.token" in line


async def test_a_refused_stored_private_token_says_how_to_store_a_new_one(
    store: sa.Engine, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv("GHLSYNC_SECRET_KEY", key)
    TokenVault(store, TokenCipher([key])).save_private(sandbox.location_id, Secret("pit-revoked"))
    worker = _worker(store, sandbox, location_id="loc_cfg", token="pit-cfg")
    send(store, delivery("c1", location=sandbox.location_id, email="ava@example.com"))

    assert await worker.run_once() == 1
    await worker.client.aclose()

    [letter] = list_dead_letters(store)
    assert f"ghlsync locations add {sandbox.location_id} --token" in letter.reason
    assert "auth login" not in letter.reason


async def test_a_key_that_cannot_open_the_token_pauses_the_location_without_using_attempts(
    store: sa.Engine, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed_with = generate_key()
    TokenVault(store, TokenCipher([sealed_with])).save_private(
        sandbox.location_id, Secret(sandbox.token)
    )
    monkeypatch.setenv("GHLSYNC_SECRET_KEY", generate_key())  # not the key it was sealed with
    worker = _worker(store, sandbox, location_id="loc_cfg", token="pit-cfg")
    send(store, delivery("c1", location=sandbox.location_id, email="ava@example.com"))

    assert await worker.run_once() == 1
    send(store, delivery("c2", location=sandbox.location_id, email="bo@example.com"))
    claimed_during_pause = await worker.run_once()
    await worker.client.aclose()

    row = work_row(store, "c1", sandbox.location_id)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert "configuration error, location paused" in row["last_error"]
    assert "GHLSYNC_SECRET_KEY" in row["last_error"]
    assert claimed_during_pause == 0  # the location's other work waits too
    assert list_dead_letters(store) == []
