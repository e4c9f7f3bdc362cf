"""Issue 12 §1: the mapping tester's "Send to sandbox" when a sandbox environment exists: the
payload really synced to the sandbox environment's GHL (never the running one's)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync.mapping import AppConfig
from ghlsync.sandbox import SandboxServer
from tests._console_kit import ConsoleSite, csrf_of, sign_in, start


@pytest.fixture
def site_with_sandbox(console_store: sa.Engine, sandbox: SandboxServer) -> Iterator[ConsoleSite]:
    raw = AppConfig.default().model_dump(mode="python", by_alias=True)
    raw["ghl"] = {"base_url": "http://127.0.0.1:1", "location_id": "loc_prod", "token": "p-tok"}
    raw["environment"] = "production"
    raw["environments"] = {
        "production": {},
        "sandbox": {
            "ghl": {
                "base_url": sandbox.url,
                "location_id": sandbox.location_id,
                "token": sandbox.token,
                "calendar_id": sandbox.calendar_id,
            }
        },
    }
    with start(console_store, config=AppConfig.model_validate(raw)) as site:
        yield site


def test_send_to_sandbox_syncs_the_payload_there(
    site_with_sandbox: ConsoleSite, sandbox: SandboxServer
) -> None:
    body = {"customer_id": "cust-t1", "first_name": "Tess", "email": "tess@example.com"}
    with httpx2.Client() as client:
        sign_in(client, site_with_sandbox)
        page = client.get(f"{site_with_sandbox.console}/tester")
        assert "Send to sandbox" in page.text and sandbox.url in page.text
        sent = client.post(
            f"{site_with_sandbox.console}/tester/sandbox",
            data={
                "csrf": csrf_of(page.text),
                "event": "customer.created",
                "payload": json.dumps(body),
            },
        )

    assert sent.status_code == 200
    assert "not sent" not in sent.text, sent.text[sent.text.find("sandbox-result") :][:600]
    location = sandbox.state.location(sandbox.location_id)
    assert location is not None
    [contact] = location.contacts.values()
    assert contact["email"] == "tess@example.com"
    assert "sent to the sandbox" in sent.text and "cust-t1: <strong>created</strong>" in sent.text
    assert contact["id"] in sent.text


def test_a_payload_that_cannot_map_is_not_sent(
    site_with_sandbox: ConsoleSite, sandbox: SandboxServer
) -> None:
    with httpx2.Client() as client:
        sign_in(client, site_with_sandbox)
        page = client.get(f"{site_with_sandbox.console}/tester")
        sent = client.post(
            f"{site_with_sandbox.console}/tester/sandbox",
            data={"csrf": csrf_of(page.text), "event": "customer.created", "payload": "[1]"},
        )
    assert "not sent to the sandbox" in sent.text and "must be a JSON object" in sent.text
    location = sandbox.state.location(sandbox.location_id)
    assert location is not None and not location.contacts


def test_no_sandbox_environment_no_button(console_site: ConsoleSite) -> None:
    with httpx2.Client() as client:
        sign_in(client, console_site)
        page = client.get(f"{console_site.console}/tester")
    assert page.status_code == 200 and "Send to sandbox" not in page.text
