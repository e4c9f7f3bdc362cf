"""Sandbox tasks, notes, appointments, location resources and users."""

from __future__ import annotations

import httpx2

from tests._sandbox import InProcessSandbox

LOC = "loc_sandbox"
DUE = "2030-01-01T10:00:00Z"


async def _contact(client: httpx2.AsyncClient) -> str:
    response = await client.post("/contacts/", json={"locationId": LOC, "email": "r@x.io"})
    contact_id: str = response.json()["contact"]["id"]
    return contact_id


async def test_task_lifecycle(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        cid = await _contact(client)
        made = await client.post(
            f"/contacts/{cid}/tasks", json={"title": "Call", "dueDate": DUE, "completed": False}
        )
        tid = made.json()["task"]["id"]
        changed = await client.put(f"/contacts/{cid}/tasks/{tid}", json={"title": "Call back"})
        done = await client.put(f"/contacts/{cid}/tasks/{tid}/completed", json={"completed": True})
        listed = await client.get(f"/contacts/{cid}/tasks")
        searched = await client.post(f"/locations/{LOC}/tasks/search", json={"completed": True})
        deleted = await client.delete(f"/contacts/{cid}/tasks/{tid}")
        gone = await client.get(f"/contacts/{cid}/tasks/{tid}")
    assert made.status_code == 201
    assert changed.json()["task"]["title"] == "Call back"
    assert done.json()["task"]["completed"] is True
    assert [t["id"] for t in listed.json()["tasks"]] == [tid]
    assert [t["id"] for t in searched.json()["tasks"]] == [tid]
    assert deleted.json() == {"succeded": True}
    assert gone.status_code == 404


async def test_task_requires_title_due_date_and_completed(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        cid = await _contact(client)
        response = await client.post(f"/contacts/{cid}/tasks", json={"title": "x"})
        unknown_contact = await client.post(
            "/contacts/nope/tasks", json={"title": "x", "dueDate": DUE, "completed": False}
        )
    assert response.status_code == 422
    assert set(response.json()["message"]) == {
        "dueDate should not be empty",
        "completed should not be empty",
    }
    assert unknown_contact.status_code == 404


async def test_note_lifecycle(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        cid = await _contact(client)
        made = await client.post(f"/contacts/{cid}/notes", json={"body": "hello"})
        nid = made.json()["note"]["id"]
        changed = await client.put(f"/contacts/{cid}/notes/{nid}", json={"body": "bye"})
        got = await client.get(f"/contacts/{cid}/notes/{nid}")
        listed = await client.get(f"/contacts/{cid}/notes")
        deleted = await client.delete(f"/contacts/{cid}/notes/{nid}")
    assert made.status_code == 201
    assert changed.json()["note"]["body"] == "bye"
    assert got.json()["note"]["body"] == "bye"
    assert len(listed.json()["notes"]) == 1
    assert deleted.json() == {"succeded": True}
    assert sandbox_asgi.state.locations[LOC].notes == {}


async def test_appointment_lifecycle(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as contacts, sandbox_asgi.client("2021-04-15") as calendars:
        cid = await _contact(contacts)
        made = await calendars.post(
            "/calendars/events/appointments",
            json={
                "calendarId": "cal_sandbox",
                "locationId": LOC,
                "contactId": cid,
                "startTime": "2030-01-01T10:00:00+00:00",
                "title": "Estimate",
            },
        )
        eid = made.json()["id"]
        edited = await calendars.put(
            f"/calendars/events/appointments/{eid}", json={"appointmentStatus": "confirmed"}
        )
        got = await calendars.get(f"/calendars/events/appointments/{eid}")
        by_contact = await contacts.get(f"/contacts/{cid}/appointments")
        window = await calendars.get(
            "/calendars/events",
            params={
                "locationId": LOC,
                "calendarId": "cal_sandbox",
                "startTime": "1893456000000",
                "endTime": "1893542400000",
            },
        )
        deleted = await calendars.delete(f"/calendars/events/{eid}")
    assert made.status_code == 200
    assert made.json()["endTime"] == "2030-01-01T10:30:00+00:00"
    assert edited.json()["appointmentStatus"] == "confirmed"
    assert got.json()["event"]["title"] == "Estimate"
    assert [e["id"] for e in by_contact.json()["events"]] == [eid]
    assert [e["id"] for e in window.json()["events"]] == [eid]
    assert deleted.status_code == 201 and deleted.json() == {"succeeded": True}


async def test_appointment_needs_a_known_calendar(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as contacts, sandbox_asgi.client("2021-04-15") as calendars:
        cid = await _contact(contacts)
        response = await calendars.post(
            "/calendars/events/appointments",
            json={
                "calendarId": "nope",
                "locationId": LOC,
                "contactId": cid,
                "startTime": "2030-01-01T10:00:00Z",
            },
        )
    assert response.status_code == 400


async def test_users_calendars_and_tags(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client, sandbox_asgi.client("2021-04-15") as cal:
        users = await client.get("/users/", params={"locationId": LOC})
        user = await client.get(f"/users/{users.json()['users'][0]['id']}")
        calendars = await cal.get("/calendars/", params={"locationId": LOC})
        await client.post("/contacts/", json={"locationId": LOC, "tags": ["vip"]})
        tags = await client.get(f"/locations/{LOC}/tags")
    assert user.json()["id"] == "usr_sandbox"
    assert [c["id"] for c in calendars.json()["calendars"]] == ["cal_sandbox"]
    assert [t["name"] for t in tags.json()["tags"]] == ["vip"]


async def test_bulk_tags_add_and_remove_all(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        cid = (await client.post("/contacts/", json={"locationId": LOC, "tags": ["keep"]})).json()[
            "contact"
        ]["id"]
        added = await client.post(
            "/contacts/bulk/tags/update/add",
            json={"contacts": [cid, "nope"], "tags": ["new"], "locationId": LOC},
        )
        cleared = await client.post(
            "/contacts/bulk/tags/update/remove",
            json={"contacts": [cid], "tags": [], "locationId": LOC, "removeAllTags": True},
        )
    assert added.json()["errorCount"] == 1
    assert added.json()["responses"][0]["tagsAdded"] == ["new"]
    assert cleared.json()["responses"][0]["tagsRemoved"] == ["keep", "new"]
    assert sandbox_asgi.state.locations[LOC].contacts[cid]["tags"] == []


async def test_appointment_notes_and_free_slots(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as contacts, sandbox_asgi.client("2021-04-15") as cal:
        cid = await _contact(contacts)
        eid = (
            await cal.post(
                "/calendars/events/appointments",
                json={
                    "calendarId": "cal_sandbox",
                    "locationId": LOC,
                    "contactId": cid,
                    "startTime": "2030-01-01T09:00:00+00:00",
                },
            )
        ).json()["id"]
        note = await cal.post(f"/calendars/appointments/{eid}/notes", json={"body": "gate code"})
        notes = await cal.get(
            f"/calendars/appointments/{eid}/notes", params={"limit": 10, "offset": 0}
        )
        unpaged = await cal.get(f"/calendars/appointments/{eid}/notes")
        slots = await cal.get(
            "/calendars/cal_sandbox/free-slots",
            params={"startDate": 1893456000000, "endDate": 1893456000000},
        )
    assert note.status_code == 201
    assert [n["body"] for n in notes.json()["notes"]] == ["gate code"]
    assert unpaged.status_code == 422  # the spec requires limit and offset
    day = slots.json()["2030-01-01"]["slots"]
    assert "2030-01-01T09:00:00+00:00" not in day
    assert "2030-01-01T09:30:00+00:00" in day
