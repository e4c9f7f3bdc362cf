"""Issue 8, item 11: `ghlsync locations` does what docs/locations.md says, and a location
added while a process runs is synced without a restart (the token vault is opened lazily)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from ghlsync._secret import Secret
from ghlsync.cli import app
from ghlsync.engine.locations._services import LocationServices
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import Mapper
from ghlsync.sandbox import SandboxServer
from ghlsync.server._run import build_worker
from ghlsync.store import create_engine, migrate
from tests._engine_kit import delivery, send, work_row
from tests._locations_kit import base_config, connect_agency, sandbox_oauth

_SANDBOX_ENV = {
    "GHLSYNC_GHL_CLIENT_ID": "sandbox-client",
    "GHLSYNC_GHL_CLIENT_SECRET": "sandbox-secret",
}


class Cli:
    """`ghlsync locations ...` with this test's store, key and config file."""

    def __init__(self, tmp_path: Path, url: str, key: str, config: str = "", **env: str) -> None:
        self.config = tmp_path / "ghlsync.yaml"
        self.config.write_text(f"database_url: {url}\n{config}")
        self.env = {"GHLSYNC_SECRET_KEY": key, "GHLSYNC_DATABASE_URL": "", **env}

    def __call__(self, *args: str) -> Result:
        full = ["locations", *args, "--config", str(self.config)]
        return CliRunner().invoke(app, full, env=self.env)


@pytest.fixture
def key() -> str:
    return generate_key()


def _vault(url: str, key: str, sandbox: SandboxServer | None = None) -> TokenVault:
    oauth = sandbox_oauth(sandbox) if sandbox is not None else None
    return TokenVault(sa.create_engine(url), TokenCipher([key]), oauth)


def test_re_adding_with_a_token_replaces_it_even_where_an_agency_could_mint_one(
    tmp_path: Path, sqlite_url: str, key: str, sandbox: SandboxServer
) -> None:
    cli = Cli(tmp_path, sqlite_url, key, GHLSYNC_GHL_BASE_URL=sandbox.url, **_SANDBOX_ENV)
    migrate(create_engine(sqlite_url))  # `locations list` only reads: it never creates the store
    vault = _vault(sqlite_url, key, sandbox)
    company = asyncio.run(connect_agency(sandbox, vault))
    minted = cli("add", "loc_sandbox", "--from-company", company)
    assert "GHL token: minted" in minted.output, minted.output

    replaced = cli("add", "loc_sandbox", "--token", "pit-new-0123456789")

    assert replaced.exit_code == 0, replaced.output
    assert "replaced by the Private Integration token given" in replaced.output
    assert asyncio.run(vault.token("loc_sandbox")).reveal() == "pit-new-0123456789"
    again = cli("add", "loc_sandbox")  # re-adding: the agency is known, still no swap
    assert again.exit_code == 0, again.output
    status = vault.status("loc_sandbox")
    assert status is not None and status.kind == "private"
    assert asyncio.run(vault.token("loc_sandbox")).reveal() == "pit-new-0123456789"


def test_only_an_explicit_from_company_swaps_a_private_token_and_says_so(
    tmp_path: Path, sqlite_url: str, key: str, sandbox: SandboxServer
) -> None:
    cli = Cli(tmp_path, sqlite_url, key, GHLSYNC_GHL_BASE_URL=sandbox.url, **_SANDBOX_ENV)
    assert cli("add", "loc_sandbox", "--token", "pit-first-0123456789").exit_code == 0
    vault = _vault(sqlite_url, key, sandbox)
    company = asyncio.run(connect_agency(sandbox, vault))

    swapped = cli("add", "loc_sandbox", "--from-company", company)

    assert swapped.exit_code == 0, swapped.output
    assert "Private Integration token was replaced by a token minted" in swapped.output
    status = vault.status("loc_sandbox")
    assert status is not None and status.kind == "oauth"


def test_list_and_show_include_the_configured_location(
    tmp_path: Path, sqlite_url: str, key: str
) -> None:
    config = (
        "ghl: {location_id: loc_cfg, token: pit-cfg-0123456789, calendar_id: cal_cfg}\n"
        "dripjobs: {secret: a-long-enough-secret-value}\n"
    )
    cli = Cli(tmp_path, sqlite_url, key, config)
    assert cli("add", "loc_b", "--token", "pit-b-0123456789").exit_code == 0

    listed = json.loads(cli("list", "--json").stdout)
    shown = cli("show", "loc_cfg", "--public-url", "https://sync.example.com")
    as_json = cli("show", "loc_cfg", "--json")

    by_id = {entry["location_id"]: entry for entry in listed}
    assert set(by_id) == {"loc_cfg", "loc_b"}
    cfg = by_id["loc_cfg"]
    assert (cfg["source"], cfg["token"], cfg["calendar_id"]) == (
        "ghlsync.yaml",
        "ghl.token",
        "cal_cfg",
    )
    assert [c["path"] for c in cfg["connections"]] == ["/hooks/dripjobs/<event>"]
    assert "a-long-enough-secret-value" not in json.dumps(listed)
    assert shown.exit_code == 0, shown.output
    assert not shown.output.lstrip().startswith("{")  # readable, not JSON
    assert "Location loc_cfg: active (from ghlsync.yaml)" in shown.output
    assert "https://sync.example.com/hooks/dripjobs/<event>" in shown.output
    assert "ghl.token in ghlsync.yaml" in shown.output
    assert json.loads(as_json.stdout)["location_id"] == "loc_cfg"


def test_show_is_readable_for_a_stored_location(tmp_path: Path, sqlite_url: str, key: str) -> None:
    cli = Cli(tmp_path, sqlite_url, key)
    override = tmp_path / "b.yaml"
    override.write_text("tags:\n  - {tag: agency-b}\n")
    added = cli("add", "loc_b", "--token", "pit-b-0123456789", "--mapping", str(override))
    assert added.exit_code == 0, added.output

    shown = cli("show", "loc_b")

    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "Location loc_b: active (from store)"
    assert any("Private Integration token" in line for line in lines)
    assert any("/hooks/dripjobs/dj_" in line and "[live]" in line for line in lines)
    assert "      - {tag: agency-b}" in lines  # the override as written, indented


async def test_a_location_stored_after_start_up_is_synced_without_a_restart(
    sqlite_url: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv("GHLSYNC_SECRET_KEY", key)
    engine = create_engine(sqlite_url)
    migrate(engine)
    try:
        # Started with only the configured location and no token stored at all.
        config = base_config(base_url=sandbox.url, location_id="loc_cfg", token="pit-cfg")
        mapper = Mapper(config)
        services = LocationServices.build(engine, config, mapper=mapper)
        worker = build_worker(engine, config, mapper, services=services)
        # Then `ghlsync locations add loc_sandbox --token ...` (another process) stores one.
        TokenVault(engine, TokenCipher([key])).save_private(
            sandbox.location_id, Secret(sandbox.token)
        )
        send(engine, delivery("c1", location=sandbox.location_id, email="late@example.com"))

        assert await worker.run_once() == 1
        await worker.client.aclose()

        row = work_row(engine, "c1", sandbox.location_id)
        assert row["status"] == "done", row["last_error"]
        emails = {
            c.get("email") for c in sandbox.state.locations[sandbox.location_id].contacts.values()
        }
        assert "late@example.com" in emails
    finally:
        engine.dispose()


async def test_an_install_after_start_up_mints_a_token(
    sqlite_url: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv("GHLSYNC_SECRET_KEY", key)
    engine = create_engine(sqlite_url)
    migrate(engine)
    try:
        config = base_config(base_url=sandbox.url, location_id="loc_cfg", token="pit-cfg")
        services = LocationServices.build(engine, config, oauth=sandbox_oauth(sandbox))
        vault = TokenVault(engine, TokenCipher([key]), sandbox_oauth(sandbox))
        company = await connect_agency(sandbox, vault)  # after start-up, like `auth login`

        [done] = await services.installer.install(location_id="loc_sandbox", company_id=company)

        assert done.token == "minted"
        assert (await services.tokens.token("loc_sandbox")).reveal()
    finally:
        engine.dispose()
