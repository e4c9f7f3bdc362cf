"""Refresh under contention, against the sandbox over real HTTP, on SQLite and PostgreSQL.

20 asyncio tasks in this process and 2 other OS processes all find the token expired at the
same moment: exactly one refresh reaches GHL, every request succeeds with the new token, and
the rotated refresh token is in the store (a re-opened vault uses it).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._errors import ReconnectNeededError
from ghlsync.ghl._oauth import InvalidGrantError, OAuthApp, TokenSet
from ghlsync.ghl._vault import RECONNECT_NEEDED, TokenVault
from ghlsync.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer
from ghlsync.store import create_engine, migrate
from tests._auth_worker import call_with_vault, fingerprint

ROOT = Path(__file__).resolve().parent.parent
KEY = "loc_sandbox"


@pytest.fixture
def sandbox_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ghl(sandbox_clock: FakeClock) -> Iterator[SandboxServer]:
    """A sandbox whose clock the test moves (to expire access tokens for real)."""
    server = SandboxServer(clock=sandbox_clock).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _oauth(ghl: SandboxServer) -> OAuthApp:
    return OAuthApp(
        DEFAULT_CLIENT_ID,
        Secret(DEFAULT_CLIENT_SECRET),
        "http://127.0.0.1/cb",
        base_url=ghl.url,
        marketplace_url=ghl.url,
    )


async def _login(oauth: OAuthApp) -> TokenSet:
    """The consent step, as a browser would do it: follow GHL's redirect, take the code."""
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(oauth.authorize_url("st-1"))
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["st-1"]
    return await oauth.exchange_code(query["code"][0])


def _expired(tokens: TokenSet) -> TokenSet:
    return TokenSet(
        tokens.access_token,
        tokens.refresh_token,
        expires_at=0.0,  # the vault sees it as long expired
        scope=tokens.scope,
        location_id=tokens.location_id,
        company_id=tokens.company_id,
    )


def _counters(ghl: SandboxServer) -> dict[str, dict[str, int]]:
    return dict(httpx2.get(f"{ghl.url}/_sandbox/counters").json())


def _start_workers(
    database_url: str, ghl: SandboxServer, key: str, go: Path
) -> list[subprocess.Popen[str]]:
    args = [database_url, ghl.url, KEY, str(go), "10"]
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests._auth_worker", *args],
            cwd=ROOT,
            env={"GHLSYNC_SECRET_KEY": key, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]


def _wait_ready(folder: Path, procs: list[subprocess.Popen[str]]) -> None:
    while len(list(folder.glob("ready-*"))) < len(procs):
        assert all(proc.poll() is None for proc in procs), "a worker died before starting"
        time.sleep(0.01)


def _worker_results(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    return results


@pytest.mark.slow
async def test_one_refresh_for_tasks_and_processes(
    engine: sa.Engine,
    database_url: str,
    ghl: SandboxServer,
    sandbox_clock: FakeClock,
    tmp_path: Path,
) -> None:
    key = generate_key()
    oauth = _oauth(ghl)
    first = await _login(oauth)
    assert first.refresh_token is not None
    vault = TokenVault(engine, TokenCipher([key]), oauth)
    vault.save(KEY, _expired(first))
    sandbox_clock.advance(86400 + 1)  # GHL now rejects the old access token too
    before = _counters(ghl)["token_calls"].get("refresh_token", 0)

    go = tmp_path / "go"
    procs = await asyncio.to_thread(_start_workers, database_url, ghl, key, go)
    await asyncio.to_thread(_wait_ready, tmp_path, procs)
    await asyncio.to_thread(vault.status, KEY)  # warm up like the workers did
    go.touch()
    here = await asyncio.gather(*(call_with_vault(vault, ghl.url, KEY) for _ in range(20)))
    there = await asyncio.to_thread(_worker_results, procs)

    counters = _counters(ghl)
    assert counters["token_calls"]["refresh_token"] - before == 1
    assert counters["refresh_token_uses"] == {first.refresh_token.reveal(): 1}
    statuses = [status for status, _ in here] + [r["status"] for r in there]
    assert statuses == [200] * 40
    tokens = {token for _, token in here} | {str(r["token"]) for r in there}
    assert len(tokens) == 1 and fingerprint(first.access_token) not in tokens

    # The rotated refresh token is durable: a vault opened afresh refreshes with it.
    reopened_engine = create_engine(database_url)
    reopened = TokenVault(reopened_engine, TokenCipher([key]), oauth)
    current = await reopened.token(KEY)
    assert fingerprint(current) in tokens
    await asyncio.to_thread(_expire_in_store, engine)
    sandbox_clock.advance(86400 + 1)
    # `reopened` keeps the row it read for READ_CACHE_S; a vault opened now reads the expiry.
    later = TokenVault(reopened_engine, TokenCipher([key]), oauth)
    assert (await call_with_vault(later, ghl.url, KEY))[0] == 200
    reopened_engine.dispose()
    assert _counters(ghl)["token_calls"]["refresh_token"] - before == 2


def _expire_in_store(engine: sa.Engine) -> None:
    from ghlsync.store._tables import ghl_connections

    with engine.begin() as conn:
        conn.execute(ghl_connections.update().values(expires_at=0.0))


async def test_reused_refresh_token_is_rejected(engine: sa.Engine, ghl: SandboxServer) -> None:
    oauth = _oauth(ghl)
    first = await _login(oauth)
    assert first.refresh_token is not None
    await oauth.refresh(first.refresh_token)
    with pytest.raises(InvalidGrantError):
        await oauth.refresh(first.refresh_token)

    # A vault holding the spent token marks the connection for a new login.
    vault = TokenVault(engine, TokenCipher([generate_key()]), oauth)
    vault.save(KEY, _expired(first))
    with pytest.raises(ReconnectNeededError, match="ghlsync auth login"):
        await vault.token(KEY)
    status = vault.status(KEY)
    assert status is not None and status.status == RECONNECT_NEEDED


async def test_agency_connection_mints_and_remints_location_tokens(
    engine: sa.Engine, ghl: SandboxServer, sandbox_clock: FakeClock
) -> None:
    oauth = _oauth(ghl)
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(oauth.authorize_url("st") + "&user_type=Company")
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    company = await oauth.exchange_code(code, user_type="Company")
    assert company.user_type == "Company" and company.location_id is None
    # This test expires rows by hand (`_expire_in_store`): read them on every request.
    vault = TokenVault(engine, TokenCipher([generate_key()]), oauth, read_cache_s=0.0)
    vault.save(company.key, company)

    minted = await vault.add_location(company.key, KEY)
    assert minted.refresh_token is None and minted.company_id == company.key
    assert (await call_with_vault(vault, ghl.url, KEY))[0] == 200

    # Due again: re-minted from the agency token, no refresh token spent.
    await asyncio.to_thread(_expire_in_store, engine)  # expires the agency token too
    sandbox_clock.advance(86400 + 1)
    status, token_hash = await call_with_vault(vault, ghl.url, KEY)
    assert status == 200 and token_hash != fingerprint(minted.access_token)
    counters = _counters(ghl)
    assert counters["token_calls"] == {"authorization_code": 1, "refresh_token": 1}
