"""Helpers for the multi-location tests: a migrated store, a cipher, configs with overrides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._secret import Secret
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._oauth import OAuthApp
from ghlsync.ghl._vault import TokenVault
from ghlsync.mapping import AppConfig
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import work_items

REDIRECT = "http://127.0.0.1:9/cb"  # the sandbox accepts any redirect URI

# A location's override: one extra tag on every contact, and an event only it knows.
OVERRIDE_B = """
tags:
  - {tag: dripjobs}
  - {tag: agency-b}
events:
  job.won:
    entity: contact
    id: customer_id
    tags: [{tag: "job:won"}]
"""


@pytest.fixture
def locations_store(database_url: str) -> Iterator[sa.Engine]:
    """A migrated store (SQLite file and PostgreSQL)."""
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def loc_cipher() -> TokenCipher:
    """A cipher with a fresh key (never the user's key file)."""
    return TokenCipher([generate_key()])


def base_config(**ghl: Any) -> AppConfig:
    """The preset, with `ghl:` settings and a DripJobs secret for the default connection."""
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["ghl"] = {"base_url": "http://127.0.0.1:1", "app_id": "sandbox", **ghl}
    raw["dripjobs"] = {"secret": "default-secret-value"}
    raw["worker"] = {"poll_interval": 0.05, "concurrency": 4}
    return AppConfig.model_validate(raw)


def queued(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """(location, entity type, source id) of every work row, sorted."""
    cols = work_items.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(cols.location_id, cols.entity_type, cols.source_id)).all()
    return sorted((r[0], r[1], r[2]) for r in rows)


def sandbox_oauth(sandbox: SandboxServer) -> OAuthApp:
    """The sandbox's OAuth client."""
    return OAuthApp(
        "sandbox-client",
        Secret("sandbox-secret"),
        REDIRECT,
        base_url=sandbox.url,
        marketplace_url=sandbox.url,
    )


async def connect_agency(sandbox: SandboxServer, vault: TokenVault) -> str:
    """Log in as the agency (company token) the way `ghlsync auth login` does."""
    oauth = sandbox_oauth(sandbox)
    query = {"client_id": "sandbox-client", "redirect_uri": REDIRECT, "user_type": "Company"}
    async with httpx2.AsyncClient(base_url=sandbox.url) as http:
        redirect = await http.get("/oauth/chooselocation", params=query)
    code = httpx2.URL(redirect.headers["location"]).params["code"]
    tokens = await oauth.exchange_code(code, "Company")
    vault.save(tokens.key, tokens)
    return tokens.key
