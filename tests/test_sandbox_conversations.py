"""`POST /conversations/messages` in the sandbox, and `client.conversations.send` against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from ghlsync.ghl._client import GHLClient
from ghlsync.ghl._errors import GHLError
from ghlsync.ghl._tokens import StaticTokens
from tests._openapi import load_spec, response_errors
from tests._sandbox import InProcessSandbox

V = "2021-04-15"


async def _contact(box: InProcessSandbox, **fields: Any) -> str:
    async with box.client() as http:
        answer = await http.post("/contacts/", json={"locationId": box.location_id, **fields})
        assert answer.status_code in (200, 201), answer.text
        contact_id: str = answer.json()["contact"]["id"]
        return contact_id


async def _send(box: InProcessSandbox, body: dict[str, Any]) -> httpx2.Response:
    async with box.client(V) as http:
        return await http.post("/conversations/messages", json=body)


async def test_email_and_sms_are_recorded_in_one_conversation_per_contact(
    sandbox_asgi: InProcessSandbox, ghl_spec_dir: Path
) -> None:
    box = sandbox_asgi
    contact = await _contact(box, email="ann@example.com", phone="+15555550123")
    email = {"type": "Email", "contactId": contact, "subject": "Hi", "html": "<p>Hi</p>"}
    first = await _send(box, email)
    assert first.status_code == 200, first.text
    assert response_errors(load_spec(ghl_spec_dir, "conversations"), first.request, first) == []
    second = await _send(box, {"type": "SMS", "contactId": contact, "message": "On our way"})
    assert second.status_code == 200, second.text
    a, b = first.json(), second.json()
    assert a["conversationId"] == b["conversationId"] and a["messageId"] != b["messageId"]
    assert "emailMessageId" in a and "emailMessageId" not in b
    location = box.state.location(box.location_id)
    assert location is not None
    sent = [m for m in location.messages.values() if m["contactId"] == contact]
    assert [(m["type"], m.get("message")) for m in sent] == [("Email", None), ("SMS", "On our way")]


async def test_refusals_where_the_location_does_not_allow_it(
    sandbox_asgi: InProcessSandbox,
) -> None:
    box = sandbox_asgi
    no_phone = await _contact(box, email="bo@example.com")
    dnd_sms = await _contact(box, phone="+15555550124", dndSettings={"SMS": {"status": "active"}})
    sms = {"type": "SMS", "message": "Hello"}
    cases = [
        ({**sms, "contactId": no_phone}, 400, "phone"),
        ({**sms, "contactId": dnd_sms}, 400, "DND"),
        ({**sms, "type": "WhatsApp", "contactId": no_phone}, 400, "provider"),
        ({"type": "Email", "contactId": no_phone, "message": "x"}, 422, "subject"),
        ({"type": "SMS", "contactId": no_phone}, 422, "message"),
        ({**sms, "contactId": no_phone, "colour": "red"}, 422, "colour"),
        ({**sms, "contactId": "nope"}, 404, "Contact"),
    ]
    for body, status, words in cases:
        answer = await _send(box, body)
        assert (answer.status_code, words in answer.text) == (status, True), (body, answer.text)
    async with box.client("2021-07-28") as http:  # the spec's Version is 2021-04-15
        wrong = await http.post("/conversations/messages", json={**sms, "contactId": dnd_sms})
    assert wrong.status_code != 200
    location = box.state.location(box.location_id)
    assert location is not None and location.messages == {}


async def test_client_sends_with_the_conversations_version(
    sandbox_asgi: InProcessSandbox,
) -> None:
    box = sandbox_asgi
    contact = await _contact(box, email="cy@example.com")
    tokens = StaticTokens({box.location_id: box.token})
    client = GHLClient(base_url=box.url, tokens=tokens, transport=box.transport())
    async with client:
        answer = await client.conversations.send(
            box.location_id,
            {"type": "Email", "contactId": contact, "message": "Hi", "subject": "S"},
        )
        assert answer["status"] == "pending" and answer["messageId"]
        refused = None
        try:
            await client.conversations.send(
                box.location_id, {"type": "SMS", "contactId": contact, "message": "Hi"}
            )
        except GHLError as exc:
            refused = exc
    assert refused is not None and "phone" in str(refused)
