"""The recipe action `send_message` against the sandbox: sent, refused, and never twice."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import SYSTEM_CLOCK
from ghlsync.engine.flows.recipes import ACTIONS
from ghlsync.engine.flows.recipes._context import StepContext
from ghlsync.engine.flows.to_ghl._plan import LiveSender
from ghlsync.ghl._errors import GHLError
from ghlsync.mapping import AppConfig
from tests._engine_flows_kit import make_client
from tests._sandbox import InProcessSandbox


async def _run(
    box: InProcessSandbox, contact: str, inputs: dict[str, Any], pending: Any = None
) -> Any:
    engine = sa.create_engine("sqlite://")
    try:
        async with make_client(box.url, box.token, box.location_id, box.transport()) as client:
            sender = LiveSender(client, box.location_id)
            ctx = StepContext(
                engine=engine, sender=sender, config=AppConfig.default(), clock=SYSTEM_CLOCK,
                location_id=box.location_id, contact_id=contact, calendar_id=None,
                key="send-test", pending=pending,
            )  # fmt: skip
            result = await ACTIONS["send_message"].run(ctx, inputs)
            return result, sender.calls
    finally:
        engine.dispose()


async def _contact(box: InProcessSandbox, **fields: Any) -> str:
    async with box.client() as http:
        answer = await http.post("/contacts/", json={"locationId": box.location_id, **fields})
        contact_id: str = answer.json()["contact"]["id"]
        return contact_id


def _messages(box: InProcessSandbox) -> list[dict[str, Any]]:
    location = box.state.location(box.location_id)
    assert location is not None
    return list(location.messages.values())


async def test_email_gets_a_subject_from_its_first_line(sandbox_asgi: InProcessSandbox) -> None:
    box = sandbox_asgi
    contact = await _contact(box, email="ann@example.com")
    result, calls = await _run(box, contact, {"type": "Email", "message": "Hello Ann\nSee you"})
    (sent,) = _messages(box)
    assert (calls, result.ghl_id, sent["subject"], sent["html"]) == (
        1, sent["id"], "Hello Ann", "Hello Ann\nSee you",
    )  # fmt: skip


async def test_sms_to_a_contact_in_dnd_is_refused(sandbox_asgi: InProcessSandbox) -> None:
    box = sandbox_asgi
    contact = await _contact(box, phone="+15555550199", dnd=True)
    with pytest.raises(GHLError, match="DND"):
        await _run(box, contact, {"type": "SMS", "message": "On our way"})
    assert _messages(box) == []


async def test_a_step_an_earlier_attempt_may_have_sent_is_not_sent_again(
    sandbox_asgi: InProcessSandbox,
) -> None:
    box = sandbox_asgi
    contact = await _contact(box, phone="+15555550198")
    pending = {"type": "SMS", "contactId": contact, "message": "Hi"}
    result, calls = await _run(box, contact, {"type": "SMS", "message": "Hi"}, pending)
    assert (calls, result.ghl_id, _messages(box)) == (0, None, [])
    assert "not sent again" in result.detail
