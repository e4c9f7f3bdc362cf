"""Issue 12 §1 leftovers in a real browser (chromium via playwright) against a real app on
loopback and a real sandbox: Connect GHL through the sandbox's OAuth consent and serve's own
callback, Send to sandbox from the mapping tester, a record found by name, paging."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.console._pages import PAGE_SIZE
from ghlsync.mapping import AppConfig
from ghlsync.sandbox import SandboxServer
from ghlsync.store._tables_engine import audit_log
from tests._console_kit import PASSWORD, ConsoleSite, _receive_lead, start


@pytest.fixture
def env_site(
    console_store: sa.Engine, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ConsoleSite]:
    """The console running `production`, with a `sandbox` environment at the sandbox, and the
    sandbox's OAuth client as the marketplace app."""
    monkeypatch.setenv("GHLSYNC_GHL_CLIENT_ID", "sandbox-client")
    monkeypatch.setenv("GHLSYNC_GHL_CLIENT_SECRET", "sandbox-secret")
    monkeypatch.setenv("GHLSYNC_GHL_MARKETPLACE_URL", sandbox.url)
    monkeypatch.delenv("GHLSYNC_PUBLIC_URL", raising=False)
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["ghl"] = {"base_url": sandbox.url}
    raw["environment"] = "production"
    sandbox_ghl = {"location_id": sandbox.location_id, "token": sandbox.token}
    raw["environments"] = {"production": {}, "sandbox": {"ghl": sandbox_ghl}}
    with start(console_store, config=AppConfig.model_validate(raw)) as site:
        _receive_lead(site)
        yield site


def _sign_in(page: Any, site: ConsoleSite) -> None:
    page.goto(f"{site.console}/")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()


def test_connect_ghl_through_the_consent_page(
    browser_page: Any, env_site: ConsoleSite, sandbox: SandboxServer
) -> None:
    page = browser_page
    _sign_in(page, env_site)
    page.get_by_role("link", name="Connections").click()
    page.get_by_role("button", name="Connect GHL for Smith Roofing").click()
    # The sandbox's consent approves at once and sends the browser to serve's callback.
    page.get_by_role("heading", name="GHL connected").wait_for()
    assert page.url.startswith(f"{env_site.console}/oauth/callback?code=")
    assert (
        f"Connected Location {sandbox.location_id}" in page.get_by_test_id("connected").inner_text()
    )
    page.get_by_role("link", name="Back to Connections").click()
    card = page.locator("section.card", has_text=sandbox.location_id)
    assert "OAuth (Marketplace app): connected" in card.inner_text()
    assert card.get_by_role("button", name=f"Reconnect GHL for {sandbox.location_id}").count() == 1


def test_send_to_sandbox_from_the_tester(
    browser_page: Any, env_site: ConsoleSite, sandbox: SandboxServer
) -> None:
    page = browser_page
    _sign_in(page, env_site)
    page.get_by_role("link", name="Mapping tester").click()
    page.get_by_label("Event", exact=True).fill("customer.created")
    body = '{"customer_id": "cust-b1", "first_name": "Bea", "email": "bea@example.com"}'
    page.get_by_label("Payload (JSON, as the Zap sends it)").fill(body)
    page.get_by_role("button", name="Send to sandbox").click()
    sent = page.get_by_test_id("sandbox-result").inner_text()
    location = sandbox.state.location(sandbox.location_id)
    assert location is not None
    [contact] = [c for c in location.contacts.values() if c.get("email") == "bea@example.com"]
    assert "sent to the sandbox" in sent and "cust-b1: created" in sent
    assert contact["id"] in sent


def test_find_a_record_by_name_and_page_the_activity(
    browser_page: Any, env_site: ConsoleSite
) -> None:
    now = time.time()
    with env_site.engine.begin() as conn:
        conn.execute(
            sa.insert(audit_log),
            [
                {"at": now - i, "location_id": "loc-p", "entity_type": "contact",
                 "source_id": f"act-{i:03d}", "action": "created", "calls": 1}
                for i in range(PAGE_SIZE + 5)
            ],
        )  # fmt: skip
    page = browser_page
    _sign_in(page, env_site)
    page.get_by_role("link", name="Records").click()
    page.get_by_label("Name, email, phone, DripJobs id or GHL id").fill("ava reyes")
    page.get_by_role("button", name="Search").click()
    assert "cust-ava" in page.get_by_test_id("record").inner_text()

    page.get_by_role("link", name="Activity").click()
    assert page.get_by_text("act-000").count() == 1
    page.get_by_role("link", name="Older →").click()
    page.get_by_text(f"act-{PAGE_SIZE:03d}").wait_for()
    assert page.get_by_text("act-000").count() == 0
    assert page.get_by_role("link", name="← Newer").count() == 1
