"""The sandbox answers bad input the way GHL does: a JSON 4xx with the rate headers, never a 500.

One test per finding of the outside review (issue 8, item 19); each failed before the fix.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx2
import pytest

from ghlsync.sandbox import DEFAULT_COMPANY_ID
from ghlsync.sandbox._state import Principal
from tests._sandbox import InProcessSandbox, running_sandbox

LOC = "loc_sandbox"
CAL = "cal_sandbox"
START = "2030-01-01T10:00:00Z"


def _assert_ghl_error(response: httpx2.Response, status: int) -> Any:
    """GHL's error shape (`message` a string, or a list for 422) with every rate-limit header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["statusCode"] == status
    assert isinstance(body["message"], list if status == 422 else str)
    for header in ("x-ratelimit-max", "x-ratelimit-remaining", "x-ratelimit-daily-remaining"):
        assert header in response.headers
    return body["message"]


async def _contact(client: httpx2.AsyncClient, **fields: Any) -> dict[str, Any]:
    made = await client.post("/contacts/", json={"locationId": LOC, **fields})
    assert made.status_code == 201, made.text
    contact: dict[str, Any] = made.json()["contact"]
    return contact


async def _appointment(box: InProcessSandbox) -> str:
    async with box.client() as api, box.client(version="2021-04-15") as cal:
        cid = (await _contact(api, email="appt@x.io"))["id"]
        made = await cal.post(
            "/calendars/events/appointments",
            json={"calendarId": CAL, "locationId": LOC, "contactId": cid, "startTime": START},
        )
    event_id: str = made.json()["id"]
    return event_id


# --- 500s on malformed parameters --------------------------------------------------------------


@pytest.mark.parametrize("limit", ["", "ten", "-1", "٣"])
async def test_contacts_by_business_with_a_bad_limit_is_a_422(
    sandbox_asgi: InProcessSandbox, limit: str
) -> None:
    async with sandbox_asgi.client() as client:
        answer = await client.get(
            "/contacts/business/b1", params={"locationId": LOC, "limit": limit}
        )
    assert _assert_ghl_error(answer, 422) == ["limit must be a number string"]


async def test_contacts_by_business_pages_and_filters_by_query(
    sandbox_asgi: InProcessSandbox,
) -> None:
    async with sandbox_asgi.client() as client:
        ids = [(await _contact(client, firstName=n))["id"] for n in ("Ann", "Bob", "Ann B")]
        await client.post(
            "/contacts/bulk/business", json={"locationId": LOC, "ids": ids, "businessId": "b1"}
        )
        params = {"locationId": LOC, "query": "ann", "limit": "1", "skip": "1"}
        answer = await client.get("/contacts/business/b1", params=params)
    assert answer.status_code == 200
    assert answer.json()["count"] == 2
    assert [c["id"] for c in answer.json()["contacts"]] == [ids[2]]


async def test_events_with_an_iso_start_time_is_a_400(sandbox_asgi: InProcessSandbox) -> None:
    params = {"locationId": LOC, "calendarId": CAL, "startTime": START, "endTime": "1893542400000"}
    async with sandbox_asgi.client(version="2021-04-15") as client:
        answer = await client.get("/calendars/events", params=params)
    message = _assert_ghl_error(answer, 400)
    assert "startTime must be a number string" in message


async def test_appointment_start_time_null_is_a_422_and_changes_nothing(
    sandbox_asgi: InProcessSandbox,
) -> None:
    event_id = await _appointment(sandbox_asgi)
    async with sandbox_asgi.client(version="2021-04-15") as client:
        answer = await client.put(
            f"/calendars/events/appointments/{event_id}", json={"startTime": None}
        )
        after = await client.get(f"/calendars/events/appointments/{event_id}")
    assert _assert_ghl_error(answer, 422) == ["startTime must be a string"]
    assert after.json()["event"]["startTime"] == START


@pytest.mark.parametrize("start", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
async def test_appointment_at_the_edge_of_time_is_a_400(
    sandbox_asgi: InProcessSandbox, start: str
) -> None:
    event_id = await _appointment(sandbox_asgi)
    async with sandbox_asgi.client(version="2021-04-15") as client:
        moved = await client.put(
            f"/calendars/events/appointments/{event_id}", json={"startTime": start}
        )
    _assert_ghl_error(moved, 400)


@pytest.mark.parametrize("start_ms", ["253402300800000", "-62135596800001", "1e300"])
async def test_free_slots_out_of_range_is_a_400(
    sandbox_asgi: InProcessSandbox, start_ms: str
) -> None:
    params = {"startDate": start_ms, "endDate": "1893542400000"}
    async with sandbox_asgi.client(version="2021-04-15") as client:
        answer = await client.get(f"/calendars/{CAL}/free-slots", params=params)
    assert _assert_ghl_error(answer, 400) == "startDate is out of range"


async def test_search_with_a_range_bound_of_the_wrong_type_is_a_422(
    sandbox_asgi: InProcessSandbox,
) -> None:
    body = {
        "locationId": LOC,
        "pageLimit": 10,
        "filters": [{"field": "dnd", "operator": "range", "value": {"gt": "soon"}}],
    }
    async with sandbox_asgi.client() as client:
        await _contact(client, email="a@x.io")
        answer = await client.post("/contacts/search", json=body)
    _assert_ghl_error(answer, 422)


async def test_a_failing_route_still_answers_ghl_json_with_rate_headers(
    sandbox_asgi: InProcessSandbox,
) -> None:
    @sandbox_asgi.app.get("/boom/now")
    async def boom() -> None:
        raise RuntimeError("a bug in a route")

    async with sandbox_asgi.client() as client:
        answer = await client.get("/boom/now")
    assert _assert_ghl_error(answer, 500) == "Internal server error"


# --- nested contact parts are validated, so nothing stored breaks the response schema ----------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"dndSettings": {"Call": {"status": "sometimes"}}},
            "dndSettings.Call.status must be one of the allowed values",
        ),
        (
            {"dndSettings": {"Pigeon": {"status": "active"}}},
            "property dndSettings.Pigeon should not exist",
        ),
        (
            {"inboundDndSettings": {"all": {"status": "permanent"}}},
            "inboundDndSettings.all.status must be one of the allowed values",
        ),
        (
            {"customFields": [{"field_value": "x"}]},
            "customFields: pass either id or key of a custom field",
        ),
        (
            {"customFields": [{"id": "f1", "field_value": True}]},
            "field_value must be a string, a number, an array of strings or an object",
        ),
        ({"customFields": ["x"]}, "customFields.0 must be an object"),
        (
            {"dateOfBirth": "25/09/1990"},
            "dateOfBirth must be a date in one of the supported formats",
        ),
        ({"dateOfBirth": {"year": 1990}}, "dateOfBirth must be a string"),
    ],
)
async def test_nested_contact_junk_is_a_422_and_not_stored(
    sandbox_asgi: InProcessSandbox, fields: dict[str, Any], message: str
) -> None:
    async with sandbox_asgi.client() as client:
        before = await _contact(client, email="n@x.io")
        created = await client.post("/contacts/", json={"locationId": LOC, **fields})
        updated = await client.put(f"/contacts/{before['id']}", json=fields)
        after = (await client.get(f"/contacts/{before['id']}")).json()["contact"]
    assert _assert_ghl_error(created, 422) == [message]
    assert _assert_ghl_error(updated, 422) == [message]
    assert after == before
    assert len(sandbox_asgi.state.locations[LOC].contacts) == 1


@pytest.mark.parametrize(
    ("given", "stored"),
    [("09/25/1990", "1990-09-25"), ("1990.9.5", "1990-09-05"), ("1990_09_25", "1990-09-25")],
)
async def test_date_of_birth_in_a_documented_format_reads_back_as_iso(
    sandbox_asgi: InProcessSandbox, given: str, stored: str
) -> None:
    async with sandbox_asgi.client() as client:
        contact = await _contact(client, dateOfBirth=given)
    assert contact["dateOfBirth"] == stored


async def test_dnd_settings_and_unknown_custom_fields(sandbox_asgi: InProcessSandbox) -> None:
    dnd = {"SMS": {"status": "active", "message": "opted out"}}
    async with sandbox_asgi.client() as client:
        field = (
            await client.post(
                f"/locations/{LOC}/customFields", json={"name": "Roof", "dataType": "TEXT"}
            )
        ).json()["customField"]
        items = [{"id": field["id"], "field_value": "slate"}, {"id": "nope", "field_value": "x"}]
        contact = await _contact(client, dndSettings=dnd, customFields=items)
    assert contact["dndSettings"] == dnd
    assert contact["customFields"] == [{"id": field["id"], "value": "slate"}]


# --- strict types and nulls ----------------------------------------------------------------------


async def test_business_name_null_is_a_422_and_the_name_stays(
    sandbox_asgi: InProcessSandbox,
) -> None:
    async with sandbox_asgi.client() as client:
        made = await client.post("/businesses/", json={"name": "Acme", "locationId": LOC})
        bid = made.json()["buiseness"]["id"]
        answer = await client.put(f"/businesses/{bid}", json={"name": None})
        after = await client.get(f"/businesses/{bid}")
    assert _assert_ghl_error(answer, 422) == ["name must be a string"]
    assert after.json()["business"]["name"] == "Acme"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/contacts/{cid}", {"dnd": 0}, "dnd must be a boolean value"),
        ("/contacts/{cid}", {"firstName": 7}, "firstName must be a string"),
        ("/contacts/{cid}", {"tags": "vip"}, "tags must be an array"),
        ("/contacts/{cid}/tasks/{tid}", {"completed": "true"}, "completed must be a boolean value"),
        ("/contacts/{cid}/tasks/{tid}", {"title": None}, "title must be a string"),
        ("/contacts/{cid}/notes/{nid}", {"pinned": 1}, "pinned must be a boolean value"),
    ],
)
async def test_no_lenient_coercion(
    sandbox_asgi: InProcessSandbox, path: str, body: dict[str, Any], message: str
) -> None:
    async with sandbox_asgi.client() as client:
        cid = (await _contact(client, email="s@x.io"))["id"]
        task = {"title": "Call", "dueDate": START, "completed": False}
        tid = (await client.post(f"/contacts/{cid}/tasks", json=task)).json()["task"]["id"]
        nid = (await client.post(f"/contacts/{cid}/notes", json={"body": "hi"})).json()["note"][
            "id"
        ]
        answer = await client.put(path.format(cid=cid, tid=tid, nid=nid), json=body)
    assert _assert_ghl_error(answer, 422) == [message]


async def test_duplicate_search_answers_the_specs_own_example(
    sandbox_asgi: InProcessSandbox,
) -> None:
    params = {"locationId": LOC, "number": "+1423164516"}  # apps/contacts.json's example
    async with sandbox_asgi.client() as client:
        answer = await client.get("/contacts/search/duplicate", params=params)
    assert answer.status_code == 200
    assert answer.json() == {"contact": None}


async def test_number_parameters_accept_fractions(sandbox_asgi: InProcessSandbox) -> None:
    event_id = await _appointment(sandbox_asgi)
    async with sandbox_asgi.client() as api, sandbox_asgi.client(version="2021-04-15") as cal:
        listing = await api.get(
            "/contacts/", params={"locationId": LOC, "limit": "20.0", "startAfter": "1.5"}
        )
        tasks = await api.post(f"/locations/{LOC}/tasks/search", json={"limit": 10.0, "skip": 0})
        slots = await cal.get(
            f"/calendars/{CAL}/free-slots",
            params={"startDate": "1893456000000.5", "endDate": "1893542400000"},
        )
        notes = await cal.get(
            f"/calendars/appointments/{event_id}/notes", params={"limit": "10.0", "offset": "0"}
        )
        too_many = await cal.get(
            f"/calendars/appointments/{event_id}/notes", params={"limit": "21", "offset": "0"}
        )
    assert [r.status_code for r in (listing, tasks, slots, notes)] == [200, 200, 200, 200]
    assert listing.json()["count"] == 1
    assert "2030-01-01" in slots.json()
    _assert_ghl_error(too_many, 422)  # the spec's `maximum: 20`


async def test_installed_locations_with_a_bad_limit_is_a_422(
    sandbox_asgi: InProcessSandbox,
) -> None:
    company = "fidelity-company-token"
    sandbox_asgi.state.tokens[company] = Principal(
        company, "Company", DEFAULT_COMPANY_ID, None, "oauth", None
    )
    params = {"companyId": DEFAULT_COMPANY_ID, "appId": "sandbox", "limit": "x"}
    async with sandbox_asgi.client(token=company) as client:
        answer = await client.get("/oauth/installedLocations", params=params)
    assert _assert_ghl_error(answer, 422) == ["limit must be a number string"]


def test_the_loopback_sandbox_answers_without_nagle_delay() -> None:
    with running_sandbox() as box:
        assert box._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_infinite_numbers_are_a_422_not_stored(sandbox_asgi: InProcessSandbox) -> None:
    json_type = {"content-type": "application/json"}
    async with sandbox_asgi.client() as client:
        field = (
            await client.post(
                f"/locations/{LOC}/customFields", json={"name": "N", "dataType": "NUMERICAL"}
            )
        ).json()["customField"]
        item = {"id": field["id"], "field_value": "HUGE"}
        body = json.dumps({"locationId": LOC, "customFields": [item]}).replace('"HUGE"', "1e400")
        contact = await client.post("/contacts/", content=body, headers=json_type)
        options = '{"name": "O", "dataType": "TEXT", "textBoxListOptions": [{"v": 1e400}]}'
        defined = await client.post(
            f"/locations/{LOC}/customFields", content=options, headers=json_type
        )
        listed = await client.get(f"/locations/{LOC}/customFields")
    assert _assert_ghl_error(contact, 422) == ["numbers must be finite"]
    assert _assert_ghl_error(defined, 422) == ["numbers must be finite"]
    assert [f["name"] for f in listed.json()["customFields"]] == ["N"]
