"""Sandbox admin API: reset, extra locations, state dump, counters, webhook delivery."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ghlsync.sandbox import SandboxServer, running_sandbox
from tests._sandbox import InProcessSandbox


async def test_reset_returns_to_the_start_state(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        admin = httpx2.AsyncClient(transport=sandbox_asgi.transport(), base_url=sandbox_asgi.url)
        await client.post("/contacts/", json={"locationId": "loc_sandbox"})
        await admin.post("/_sandbox/locations", json={"id": "loc_extra"})
        await admin.post("/_sandbox/reset")
        state = (await admin.get("/_sandbox/state")).json()
        log = (await admin.get("/_sandbox/requests")).json()
        await admin.aclose()
    assert list(state["locations"]) == ["loc_sandbox"]
    assert state["locations"]["loc_sandbox"]["contacts"] == []
    assert log == []


async def test_added_location_is_isolated_and_has_its_own_limits(
    sandbox_asgi: InProcessSandbox,
) -> None:
    admin = httpx2.AsyncClient(transport=sandbox_asgi.transport(), base_url=sandbox_asgi.url)
    made = (await admin.post("/_sandbox/locations", json={"burst": 2})).json()
    again = await admin.post("/_sandbox/locations", json={"id": made["id"]})
    async with sandbox_asgi.client(token=made["token"]) as other, sandbox_asgi.client() as main:
        created = await other.post("/contacts/", json={"locationId": made["id"]})
        cid = created.json()["contact"]["id"]
        cross = await main.get(f"/contacts/{cid}")
        second = await other.get(f"/contacts/{cid}")
        third = await other.get(f"/contacts/{cid}")
        counters = (await admin.get("/_sandbox/counters")).json()
    await admin.aclose()
    assert made["calendarId"] and made["token"]
    assert again.status_code == 409
    assert created.headers["X-RateLimit-Max"] == "2"
    assert cross.status_code == 404
    assert second.status_code == 200
    assert third.status_code == 429
    assert counters["calls"][made["id"]] == 3
    assert counters["throttled"][made["id"]] == 1


async def test_location_duplicate_setting_can_be_changed(sandbox_asgi: InProcessSandbox) -> None:
    admin = httpx2.AsyncClient(transport=sandbox_asgi.transport(), base_url=sandbox_asgi.url)
    changed = await admin.patch(
        "/_sandbox/locations/loc_sandbox", json={"allow_duplicate_contact": True}
    )
    await admin.aclose()
    assert changed.json()["allow_duplicate_contact"] is True
    assert sandbox_asgi.state.locations["loc_sandbox"].allow_duplicate_contact is True


class _Receiver:
    """A loopback HTTP server that keeps every webhook it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append((body, dict(self.headers)))
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ghl"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int) -> None:
        while len(self.received) < count:
            self.arrived.clear()
            assert self.arrived.wait(10), f"only {len(self.received)} webhooks arrived"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    rec = _Receiver()
    yield rec
    rec.close()


def test_changes_are_delivered_as_signed_ghl_webhooks(
    sandbox: SandboxServer, receiver: _Receiver
) -> None:
    headers = {"Authorization": f"Bearer {sandbox.token}", "Version": "2021-07-28"}
    with httpx2.Client(base_url=sandbox.url, headers=headers) as client:
        client.put("/_sandbox/webhooks", json={"url": receiver.url})
        cid = client.post(
            "/contacts/", json={"locationId": sandbox.location_id, "email": "w@x.io"}
        ).json()["contact"]["id"]
        client.post(f"/contacts/{cid}/notes", json={"body": "hi"})
        pem = client.get("/_sandbox/webhook-public-key").text
    receiver.wait_for(2)
    key = load_pem_public_key(pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    events = []
    for body, hdrs in receiver.received:
        key.verify(base64.b64decode(hdrs["x-ghl-signature"]), body)  # raises if forged
        events.append(json.loads(body))
    assert [e["type"] for e in events] == ["ContactCreate", "NoteCreate"]
    assert events[0]["id"] == cid and events[0]["email"] == "w@x.io"
    assert events[1]["contactId"] == cid
    assert all(e["locationId"] == sandbox.location_id for e in events)
    assert all(e["webhookId"] and e["timestamp"] for e in events)
    assert events[0]["webhookId"] != events[1]["webhookId"]


def test_running_sandbox_serves_with_custom_limits() -> None:
    with running_sandbox(burst=7) as box:
        headers = {"Authorization": f"Bearer {box.token}", "Version": "2021-07-28"}
        response = httpx2.get(
            f"{box.url}/users/", params={"locationId": box.location_id}, headers=headers
        )
    assert response.headers["X-RateLimit-Max"] == "7"
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{box.url}/_sandbox/state", timeout=1)
