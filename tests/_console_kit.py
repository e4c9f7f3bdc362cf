"""The console under test: a real `serve`-style app on loopback over a SQLite store with one
location, a DripJobs delivery received over HTTP, a dead letter and an admin password."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync.console._password import set_password
from ghlsync.engine import claim, dead_letter
from ghlsync.engine.locations._directory import LocationDirectory
from ghlsync.engine.locations._rows import register_location
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.mapping import AppConfig
from ghlsync.server._app import create_app
from ghlsync.server._thread import serve_in_thread
from ghlsync.store import create_engine, migrate
from tests._engine_kit import delivery, send

PASSWORD = "a console password"
LOCATION = "locConsole1"
LOCATION_NAME = "Smith Roofing"
CUSTOMER_EMAIL = "ava.reyes@example.com"
DEAD_REASON = "GHL rejected the contact: 422 email must be an email"

# For the mapping tester's recipes part: two that run on a lead from the website (one now, one
# on a 3-day timer), one whose condition fails.
TESTER_RECIPES: list[dict[str, Any]] = [
    {
        "name": "call-new-leads",
        "when": {"trigger": "dripjobs.lead.created"},
        "if": {"lead_source": {"in": ["Website", "Angi"]}},
        "do": [
            {"create_task": {"title": "Call {first_name} within 5 minutes", "due": "+0d +5m"}},
            {"add_tags": ["new-lead"]},
        ],
    },
    {
        "name": "check-in-later",
        "when": {"trigger": "dripjobs.lead.created"},
        "if": {"lead_source": {"in": ["Website"]}},
        "do": [{"create_task": {"title": "Check in with {first_name}", "due": "+0d 10:00"}}],
        "after": {"wait": "3d", "unless": "dripjobs.proposal.accepted"},
    },
    {
        "name": "referral-thanks",
        "when": {"trigger": "dripjobs.lead.created"},
        "if": {"lead_source": "Referral"},
        "do": [{"add_tags": ["referral"]}],
    },
]
TESTER_LEAD: dict[str, Any] = {
    "customer_id": "cust-ann",
    "first_name": "Ann",
    "last_name": "Lee",
    "email": "ann@example.com",
    "lead_source": "Website",
}


@dataclass
class ConsoleSite:
    """A running console: its base URL, the store, the location's connection and secret."""

    url: str
    engine: sa.Engine
    connection_id: str
    secret: str

    @property
    def console(self) -> str:
        return f"{self.url}/console"


def console_config(
    ghl_url: str = "http://127.0.0.1:1", recipes: list[dict[str, Any]] | None = None
) -> AppConfig:
    """The preset, with no GHL call possible (nothing here sends to GHL); `recipes` replace
    the preset's (which are all off)."""
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["ghl"] = {"base_url": ghl_url}
    if recipes is not None:
        raw["recipes"] = recipes
    return AppConfig.model_validate(raw)


def _receive_lead(site: ConsoleSite) -> None:
    """One lead.created through the real receiver, as a Zap sends it."""
    body = {
        "customer_id": "cust-ava",
        "first_name": "Ava",
        "last_name": "Reyes",
        "email": CUSTOMER_EMAIL,
        "phone": "+1 512 555 0101",
    }
    response = httpx2.post(
        f"{site.url}/hooks/dripjobs/{site.connection_id}/lead.created",
        content=json.dumps(body),
        headers={"authorization": f"Bearer {site.secret}", "content-type": "application/json"},
    )
    assert response.status_code == 202, response.text


def _dead_letter(engine: sa.Engine) -> None:
    """One contact that failed for good (as a worker would park it)."""
    send(
        engine,
        delivery("cust-bad", location=LOCATION, email="not-an-email", received_at=time.time()),
    )
    for item in claim(engine, "w1", [LOCATION], 10, 30):
        assert dead_letter(engine, item, DEAD_REASON, "UnprocessableError")


@pytest.fixture
def console_store(tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated SQLite store."""
    engine = create_engine(f"sqlite:///{tmp_path / 'console.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@contextmanager
def start(
    engine: sa.Engine, *, password: bool = True, config: AppConfig | None = None
) -> Iterator[ConsoleSite]:
    """Serve the app over `engine` with one registered location (and the password set)."""
    cipher = TokenCipher([generate_key()])
    config = config or console_config()
    registered = register_location(engine, cipher, LOCATION, now=time.time(), name=LOCATION_NAME)
    assert registered.new_secret is not None
    locations = LocationDirectory(engine, config, cipher, clock=SYSTEM_CLOCK)
    if password:
        set_password(engine, PASSWORD, now=time.time())
    app = create_app(engine=engine, config=config, locations=locations)
    with serve_in_thread(app) as url:
        yield ConsoleSite(url, engine, registered.connection_id, registered.new_secret.reveal())


@pytest.fixture
def console_site(console_store: sa.Engine) -> Iterator[ConsoleSite]:
    """The console with a password, a received lead and a dead letter."""
    with start(console_store) as site:
        _dead_letter(console_store)  # first: the worker's claim takes every queued item
        _receive_lead(site)
        yield site


def csrf_of(html: str) -> str:
    """The first form's CSRF token on a page."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: httpx2.Client, site: ConsoleSite, password: str = PASSWORD) -> httpx2.Response:
    """GET the sign-in form, POST the password with its token."""
    page = client.get(f"{site.console}/login")
    return client.post(
        f"{site.console}/login", data={"csrf": csrf_of(page.text), "password": password}
    )
