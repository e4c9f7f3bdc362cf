"""Issue 12 §1: Connect / Reconnect GHL from the console, through serve's own OAuth callback,
against the sandbox's OAuth (consent page, code, token exchange); the tokens land encrypted
in the vault, stamped with the running environment; a state is good once."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync.ghl._vault import stored_status
from ghlsync.mapping import AppConfig
from ghlsync.sandbox import SandboxServer
from ghlsync.store._tables import ghl_connections
from tests._console_kit import ConsoleSite, sign_in, start


@pytest.fixture
def oauth_site(
    console_store: sa.Engine, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ConsoleSite]:
    monkeypatch.setenv("GHLSYNC_GHL_CLIENT_ID", "sandbox-client")
    monkeypatch.setenv("GHLSYNC_GHL_CLIENT_SECRET", "sandbox-secret")
    monkeypatch.delenv("GHLSYNC_GHL_MARKETPLACE_URL", raising=False)
    monkeypatch.delenv("GHLSYNC_PUBLIC_URL", raising=False)
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["ghl"] = {"base_url": sandbox.url}
    raw["environment"] = "sandbox"
    with start(console_store, config=AppConfig.model_validate(raw)) as site:
        yield site


def _connect(client: httpx2.Client, site: ConsoleSite) -> httpx2.Response:
    """Follow the Connect GHL link; the answer is the redirect to the consent page."""
    page = client.get(f"{site.console}/connections")
    assert 'href="/console/oauth/connect"' in page.text and "Connect GHL" in page.text
    return client.get(f"{site.console}/oauth/connect")


def test_connect_goes_through_the_consent_and_stores_the_tokens(
    oauth_site: ConsoleSite, sandbox: SandboxServer
) -> None:
    with httpx2.Client() as client:
        sign_in(client, oauth_site)
        started = _connect(client, oauth_site)
        consent = started.headers["location"]
        query = parse_qs(urlsplit(consent).query)
        assert started.status_code == 303 and consent.startswith(sandbox.url)
        assert query["redirect_uri"] == [f"{oauth_site.console}/oauth/callback"]
        assert "contacts.write" in query["scope"][0] and len(query["state"][0]) >= 40
        back = client.get(consent)  # the sandbox approves and redirects to our callback
        callback = back.headers["location"]
        done = httpx2.get(callback)  # no console cookie: GHL's redirect does not carry it
        again = httpx2.get(callback)

    assert back.status_code == 302 and callback.startswith(f"{oauth_site.console}/oauth/callback")
    assert done.status_code == 200, done.text
    assert f"Connected Location {sandbox.location_id}" in done.text
    status = stored_status(oauth_site.engine, sandbox.location_id)
    assert status is not None and status.kind == "oauth" and "contacts.write" in status.scopes
    with oauth_site.engine.connect() as conn:
        env = conn.execute(sa.select(ghl_connections.c.environment)).scalar_one()
    assert env == "sandbox"
    assert again.status_code == 400 and "already used" in again.text  # a state is good once
    with httpx2.Client() as client:  # the location is listed, connected, with its Zap URLs
        sign_in(client, oauth_site)
        listed = client.get(f"{oauth_site.console}/connections").text
    assert sandbox.location_id in listed and "OAuth (Marketplace app): connected" in listed
    assert "Reconnect GHL" in listed


def test_a_forged_state_or_a_refusal_stores_nothing(
    oauth_site: ConsoleSite, sandbox: SandboxServer
) -> None:
    forged = httpx2.get(f"{oauth_site.console}/oauth/callback", params={"code": "c", "state": "x"})
    with httpx2.Client() as client:
        sign_in(client, oauth_site)
        state = parse_qs(urlsplit(_connect(client, oauth_site).headers["location"]).query)
        params = {"state": state["state"][0], "error": "access_denied"}
        denied = httpx2.get(f"{oauth_site.console}/oauth/callback", params=params)

    assert forged.status_code == 400 and "expired or was already used" in forged.text
    assert denied.status_code == 400 and "access_denied" in denied.text
    assert stored_status(oauth_site.engine, sandbox.location_id) is None


def test_connect_without_the_app_says_what_to_set(
    oauth_site: ConsoleSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GHLSYNC_GHL_CLIENT_ID")
    with httpx2.Client() as client:
        sign_in(client, oauth_site)
        answer = _connect(client, oauth_site)
    assert answer.status_code == 200
    assert "GHLSYNC_GHL_CLIENT_ID" in answer.text and "/console/oauth/callback" in answer.text


def test_connect_is_behind_the_sign_in(oauth_site: ConsoleSite) -> None:
    answer = httpx2.get(f"{oauth_site.console}/oauth/connect")  # e.g. a link on another site
    assert answer.status_code == 303 and answer.headers["location"].endswith("/console/login")
