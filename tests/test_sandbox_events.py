"""Which GHL webhook events the sandbox raises for which changes, and their shapes."""

from __future__ import annotations

from typing import Any

import httpx2

from ghlsync.sandbox import SandboxState
from ghlsync.sandbox._webhooks import WebhookDispatcher
from tests._sandbox import InProcessSandbox

LOC = "loc_sandbox"


def _capture(box: InProcessSandbox) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    box.state.event_hook = events.append  # bypass delivery; see test_sandbox_admin for HTTP
    return events


async def test_contact_events_follow_what_changed(sandbox_asgi: InProcessSandbox) -> None:
    events = _capture(sandbox_asgi)
    async with sandbox_asgi.client() as client:
        cid = (await client.post("/contacts/", json={"locationId": LOC, "firstName": "A"})).json()[
            "contact"
        ]["id"]
        await client.put(f"/contacts/{cid}", json={"firstName": "A"})  # no change
        await client.put(f"/contacts/{cid}", json={"tags": ["x"]})
        await client.put(f"/contacts/{cid}", json={"firstName": "B"})
        await client.post(f"/contacts/{cid}/tags", json={"tags": ["x"]})  # already there
        await client.delete(f"/contacts/{cid}")
    assert [e["type"] for e in events] == [
        "ContactCreate",
        "ContactTagUpdate",
        "ContactUpdate",
        "ContactDelete",
    ]
    assert events[1]["tags"] == ["x"] and events[2]["firstName"] == "B"
    assert all(e["locationId"] == LOC and e["id"] == cid for e in events)
    assert len({e["webhookId"] for e in events}) == 4


async def test_task_note_and_appointment_events(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as api, sandbox_asgi.client("2021-04-15") as cal:
        cid = (await api.post("/contacts/", json={"locationId": LOC})).json()["contact"]["id"]
        events = _capture(sandbox_asgi)
        task = (
            await api.post(
                f"/contacts/{cid}/tasks",
                json={"title": "T", "dueDate": "2030-01-01T00:00:00Z", "completed": False},
            )
        ).json()["task"]
        await api.put(f"/contacts/{cid}/tasks/{task['id']}", json={"title": "T2"})
        await api.put(f"/contacts/{cid}/tasks/{task['id']}/completed", json={"completed": True})
        await api.delete(f"/contacts/{cid}/tasks/{task['id']}")
        note = (await api.post(f"/contacts/{cid}/notes", json={"body": "n"})).json()["note"]
        await api.put(f"/contacts/{cid}/notes/{note['id']}", json={"body": "m"})
        await api.delete(f"/contacts/{cid}/notes/{note['id']}")
        made = await cal.post(
            "/calendars/events/appointments",
            json={
                "calendarId": "cal_sandbox",
                "locationId": LOC,
                "contactId": cid,
                "startTime": "2030-01-01T10:00:00Z",
            },
        )
        eid = made.json()["id"]
        await cal.put(f"/calendars/events/appointments/{eid}", json={"title": "X"})
        await cal.delete(f"/calendars/events/{eid}")
    assert [e["type"] for e in events] == [
        "TaskCreate",
        "TaskComplete",
        "TaskDelete",
        "NoteCreate",
        "NoteUpdate",
        "NoteDelete",
        "AppointmentCreate",
        "AppointmentUpdate",
        "AppointmentDelete",
    ]
    assert events[0]["contactId"] == cid and events[0]["title"] == "T"
    assert events[4]["body"] == "m"
    assert events[7]["appointment"]["title"] == "X"
    assert events[6]["appointment"]["id"] == eid


async def test_delivery_retries_only_on_429() -> None:
    answers = iter([429, 200, 500])
    seen: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.content)
        return httpx2.Response(next(answers))

    state = SandboxState()
    state.webhook_url = "http://receiver.invalid/hooks"
    dispatcher = WebhookDispatcher(state, transport=httpx2.MockTransport(handler))
    dispatcher.publish({"type": "ContactCreate", "webhookId": "w1"})
    dispatcher.publish({"type": "ContactDelete", "webhookId": "w2"})
    await dispatcher.drain()
    assert len(seen) == 3  # w1 twice (429 then 200), w2 once (500 is not retried)
    assert [(d["webhookId"], d["status"]) for d in state.webhook_deliveries] == [
        ("w1", 200),
        ("w2", 500),
    ]
