"""`ghlsync locations`: add, list, show, rotate-secret, remove against a real store."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from ghlsync.cli import app
from ghlsync.engine.locations._rows import get_connection, get_location
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._vault import TokenVault
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate
from tests._locations_kit import OVERRIDE_B, connect_agency, sandbox_oauth

_SECRET_LINE = re.compile(r"Webhook secret \(shown once\): (\S+)")
_URL_LINE = re.compile(r"DripJobs webhook URL: https://sync\.example\.com/hooks/dripjobs/(dj_\S+)/")


class Cli:
    """Runs `ghlsync` with the store, key and config of one test."""

    def __init__(self, tmp_path: Path, database_url: str, key: str, **env: str) -> None:
        self.config = tmp_path / "ghlsync.yaml"
        self.config.write_text(f"database_url: {database_url}\n")
        self.env = {"GHLSYNC_SECRET_KEY": key, "GHLSYNC_DATABASE_URL": "", **env}
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        full = ["locations", *args, "--config", str(self.config)]
        return self.runner.invoke(app, full, env=self.env)


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def cli(tmp_path: Path, database_url: str, key: str) -> Cli:
    return Cli(tmp_path, database_url, key)


@pytest.fixture
def store(cli: Cli, database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _added(result: Result) -> tuple[str, str]:
    assert result.exit_code == 0, result.output
    url, secret = _URL_LINE.search(result.output), _SECRET_LINE.search(result.output)
    assert url is not None and secret is not None, result.output
    return url.group(1), secret.group(1)


def test_add_prints_the_url_and_secret_once_and_stores_them(
    cli: Cli, store: sa.Engine, key: str, tmp_path: Path
) -> None:
    override = tmp_path / "b.yaml"
    override.write_text(OVERRIDE_B)
    result = cli(
        "add",
        "loc_b",
        "--token",
        "pit-b-0123456789",
        "--calendar",
        "cal_b",
        "--mapping",
        str(override),
        "--public-url",
        "https://sync.example.com",
    )
    connection_id, secret = _added(result)

    cipher = TokenCipher([key])
    stored = get_connection(store, cipher, connection_id)
    assert stored is not None and stored.secret.reveal() == secret
    row = get_location(store, "loc_b")
    assert row is not None and (row.calendar_id, row.mapping_override) == ("cal_b", OVERRIDE_B)
    vault = TokenVault(store, cipher)
    token = vault.status("loc_b")
    assert token is not None and token.kind == "private"

    again = cli("add", "loc_b")
    assert again.exit_code == 0 and secret not in again.output
    listed = cli("list", "--json")
    assert listed.exit_code == 0 and secret not in listed.output
    [entry] = json.loads(listed.output)
    assert (entry["status"], entry["token"], entry["calendar_id"]) == ("active", "active", "cal_b")
    assert cli("show", "loc_b", "--reveal").output.count(secret) == 1


def test_an_invalid_override_is_refused_with_its_key_and_nothing_is_stored(
    cli: Cli, store: sa.Engine, tmp_path: Path
) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text("events: {x: {entity: job, id: a}}\n")
    result = cli("add", "loc_b", "--mapping", str(override))
    assert result.exit_code == 2
    assert f"{override}: events.x.entity: 'job' is not one of" in result.output
    assert get_location(store, "loc_b") is None


def test_rotate_then_remove(cli: Cli, store: sa.Engine, key: str) -> None:
    connection_id, secret = _added(cli("add", "loc_b", "--public-url", "https://sync.example.com"))

    rotated = cli("rotate-secret", "loc_b")
    assert rotated.exit_code == 0, rotated.output
    fresh = rotated.output.split("(shown once): ")[1].split()[0]
    stored = get_connection(store, TokenCipher([key]), connection_id)
    assert stored is not None and stored.secret.reveal() == fresh != secret

    removed = cli("remove", "loc_b")
    assert removed.exit_code == 0 and "now uninstalled" in removed.output
    row = get_location(store, "loc_b")
    assert row is not None and row.status == "uninstalled"
    after = cli("rotate-secret", "loc_b")
    assert after.exit_code == 2 and "no live connection" in after.output
    assert cli("remove", "loc_nope").exit_code == 2


def test_add_from_company_mints_the_location_token(
    tmp_path: Path, database_url: str, key: str, sandbox: SandboxServer
) -> None:
    env = {
        "GHLSYNC_GHL_CLIENT_ID": "sandbox-client",
        "GHLSYNC_GHL_CLIENT_SECRET": "sandbox-secret",
        "GHLSYNC_GHL_BASE_URL": sandbox.url,
    }
    cli = Cli(tmp_path, database_url, key, **env)
    store = create_engine(database_url)
    migrate(store)
    try:
        _add_from_company(cli, store, key, sandbox)
    finally:
        store.dispose()


def _add_from_company(cli: Cli, store: sa.Engine, key: str, sandbox: SandboxServer) -> None:
    vault = TokenVault(store, TokenCipher([key]), sandbox_oauth(sandbox))
    company = asyncio.run(connect_agency(sandbox, vault))

    missing = cli("add", "loc_sandbox", "--from-company", "comp_nope")
    result = cli("add", "loc_sandbox", "--from-company", company)

    assert missing.exit_code == 2 and "no agency connection" in missing.output
    assert result.exit_code == 0, result.output
    assert "GHL token: minted" in result.output
    minted = vault.status("loc_sandbox")
    assert minted is not None and minted.company_id == company
