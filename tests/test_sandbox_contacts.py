"""Sandbox contacts: duplicate rules, upsert, tags semantics, phone normalisation, paging."""

from __future__ import annotations

from typing import Any

import httpx2

from ghlsync.sandbox import normalise_phone
from tests._sandbox import InProcessSandbox

LOC = "loc_sandbox"


async def _create(client: httpx2.AsyncClient, **fields: Any) -> httpx2.Response:
    return await client.post("/contacts/", json={"locationId": LOC, **fields})


def test_phone_numbers_are_normalised_to_e164_with_us_default() -> None:
    assert normalise_phone("(415) 555-0100") == "+14155550100"
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert normalise_phone("1-415-555-0100") == "+14155550100"


async def test_create_then_get_returns_ghl_shape(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        created = await _create(client, firstName="Ann", lastName="Lee", phone="415.555.0100")
        assert created.status_code == 201
        contact = created.json()["contact"]
        got = await client.get(f"/contacts/{contact['id']}")
    assert got.status_code == 200
    body = got.json()["contact"]
    assert body["phone"] == "+14155550100"
    assert body["name"] == "Ann Lee"
    assert body["locationId"] == LOC
    assert body["dateAdded"].endswith("Z")


async def test_create_rejects_duplicate_email_case_insensitively(
    sandbox_asgi: InProcessSandbox,
) -> None:
    async with sandbox_asgi.client() as client:
        first = (await _create(client, email="Ann@Example.com")).json()["contact"]
        dup = await _create(client, email="ann@example.COM")
    assert dup.status_code == 400
    body = dup.json()
    assert body["message"] == "This location does not allow duplicated contacts."
    assert body["meta"]["contactId"] == first["id"]
    assert body["meta"]["matchingField"] == "email"


async def test_create_rejects_duplicate_phone_in_other_format(
    sandbox_asgi: InProcessSandbox,
) -> None:
    async with sandbox_asgi.client() as client:
        first = (await _create(client, phone="+1 415 555 0100")).json()["contact"]
        dup = await _create(client, phone="(415) 555-0100")
    assert dup.status_code == 400
    assert dup.json()["meta"]["contactId"] == first["id"]


async def test_location_allowing_duplicates_creates_a_second_contact(
    sandbox_asgi: InProcessSandbox,
) -> None:
    sandbox_asgi.state.locations[LOC].allow_duplicate_contact = True
    async with sandbox_asgi.client() as client:
        await _create(client, email="a@example.com")
        second = await _create(client, email="a@example.com")
    assert second.status_code == 201
    assert len(sandbox_asgi.state.locations[LOC].contacts) == 2


async def test_upsert_creates_then_updates_by_email(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        first = await client.post("/contacts/upsert", json={"locationId": LOC, "email": "b@x.io"})
        second = await client.post(
            "/contacts/upsert", json={"locationId": LOC, "email": "B@X.io", "firstName": "Bo"}
        )
    assert first.status_code == 200 and first.json()["new"] is True
    assert second.json()["new"] is False
    assert second.json()["contact"]["id"] == first.json()["contact"]["id"]
    assert second.json()["contact"]["firstName"] == "Bo"
    assert len(sandbox_asgi.state.locations[LOC].contacts) == 1


async def test_upsert_matches_by_phone_when_email_absent(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        made = (await _create(client, phone="4155550100")).json()["contact"]
        up = await client.post(
            "/contacts/upsert", json={"locationId": LOC, "phone": "+1 (415) 555-0100"}
        )
    assert up.json()["traceId"]
    assert up.json()["new"] is False
    assert up.json()["contact"]["id"] == made["id"]


async def test_upsert_with_email_and_phone_of_two_contacts_updates_email_match_only(
    sandbox_asgi: InProcessSandbox,
) -> None:
    async with sandbox_asgi.client() as client:
        by_email = (await _create(client, email="e@x.io")).json()["contact"]
        by_phone = (await _create(client, phone="4155550199")).json()["contact"]
        up = await client.post(
            "/contacts/upsert", json={"locationId": LOC, "email": "e@x.io", "phone": "4155550199"}
        )
    assert up.json()["contact"]["id"] == by_email["id"]
    assert "phone" not in up.json()["contact"]  # the clashing phone is ignored, as GHL does
    assert sandbox_asgi.state.locations[LOC].contacts[by_phone["id"]]["phone"] == "+14155550199"


async def test_duplicate_search_finds_by_email_or_number(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        made = (await _create(client, email="d@x.io", phone="4155550111")).json()["contact"]
        by_email = await client.get(
            "/contacts/search/duplicate", params={"locationId": LOC, "email": "D@x.io"}
        )
        by_phone = await client.get(
            "/contacts/search/duplicate", params={"locationId": LOC, "number": "+14155550111"}
        )
        none = await client.get(
            "/contacts/search/duplicate", params={"locationId": LOC, "email": "zz@x.io"}
        )
    assert by_email.json()["contact"]["id"] == made["id"]
    assert by_phone.json()["contact"]["id"] == made["id"]
    assert none.json() == {"contact": None}


async def test_put_tags_overwrite_and_tag_endpoints_apply_deltas(
    sandbox_asgi: InProcessSandbox,
) -> None:
    async with sandbox_asgi.client() as client:
        cid = (await _create(client, tags=["a", "b"])).json()["contact"]["id"]
        put = await client.put(f"/contacts/{cid}", json={"tags": ["c"]})
        added = await client.post(f"/contacts/{cid}/tags", json={"tags": ["d", "c"]})
        removed = await client.request(
            "DELETE", f"/contacts/{cid}/tags", json={"tags": ["c", "zz"]}
        )
    assert put.json()["succeded"] is True
    assert put.json()["contact"]["tags"] == ["c"]
    assert added.status_code == 201 and added.json()["tags"] == ["c", "d"]
    assert removed.status_code == 200 and removed.json()["tags"] == ["d"]


async def test_unknown_body_property_is_422_in_ghl_shape(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        response = await _create(client, email="x@y.io", additionalEmails=["z@y.io"])
    assert response.status_code == 422
    assert response.json() == {
        "statusCode": 422,
        "message": ["property additionalEmails should not exist"],
        "error": "Unprocessable Entity",
    }
    assert sandbox_asgi.state.locations[LOC].contacts == {}


async def test_missing_location_id_is_422(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        response = await client.post("/contacts/", json={"email": "x@y.io"})
    assert response.status_code == 422
    assert "locationId should not be empty" in response.json()["message"]


async def test_unknown_contact_is_404_and_delete_removes(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        missing = await client.get("/contacts/nope")
        cid = (await _create(client, email="gone@x.io")).json()["contact"]["id"]
        deleted = await client.delete(f"/contacts/{cid}")
        after = await client.get(f"/contacts/{cid}")
    assert missing.status_code == 404
    assert deleted.json() == {"succeded": True}
    assert after.status_code == 404


async def test_other_location_id_in_body_is_403(sandbox_asgi: InProcessSandbox) -> None:
    sandbox_asgi.state.add_location("loc_other")
    async with sandbox_asgi.client() as client:
        response = await client.post("/contacts/", json={"locationId": "loc_other"})
    assert response.status_code == 403


async def test_search_pages_with_search_after(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        for n in range(5):
            await _create(client, email=f"p{n}@x.io")
        first = (
            await client.post("/contacts/search", json={"locationId": LOC, "pageLimit": 2})
        ).json()
        cursor = first["contacts"][-1]["searchAfter"]
        rest = (
            await client.post(
                "/contacts/search",
                json={"locationId": LOC, "pageLimit": 10, "searchAfter": cursor},
            )
        ).json()
        bad = await client.post("/contacts/search", json={"locationId": LOC})
    assert first["total"] == 5
    ids = [c["id"] for c in first["contacts"] + rest["contacts"]]
    assert len(ids) == 5 == len(set(ids))
    assert bad.status_code == 422


async def test_search_filters_by_email(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        await _create(client, email="keep@x.io")
        await _create(client, email="skip@x.io")
        found = await client.post(
            "/contacts/search",
            json={
                "locationId": LOC,
                "pageLimit": 10,
                "filters": [{"field": "email", "operator": "eq", "value": "KEEP@x.io"}],
            },
        )
    assert [c["email"] for c in found.json()["contacts"]] == ["keep@x.io"]


async def test_deprecated_listing_pages_with_start_after(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        for n in range(5):
            await _create(client, email=f"l{n}@x.io")
        seen: list[str] = []
        params: dict[str, Any] = {"locationId": LOC, "limit": 2}
        for _ in range(5):
            page = (await client.get("/contacts/", params=params)).json()
            seen += [c["id"] for c in page["contacts"]]
            meta = page["meta"]
            assert meta["total"] == 5
            if "startAfterId" not in meta:
                break
            params |= {"startAfter": meta["startAfter"], "startAfterId": meta["startAfterId"]}
    assert len(seen) == 5 == len(set(seen))


async def test_custom_fields_by_key_are_stored_by_id(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        field = (
            await client.post(
                f"/locations/{LOC}/customFields", json={"name": "Lead Source", "dataType": "TEXT"}
            )
        ).json()["customField"]
        made = await _create(client, customFields=[{"key": "lead_source", "field_value": "Zapier"}])
    assert field["fieldKey"] == "contact.lead_source"
    assert made.json()["contact"]["customFields"] == [{"id": field["id"], "value": "Zapier"}]


async def test_changing_an_email_moves_the_duplicate_match(sandbox_asgi: InProcessSandbox) -> None:
    async with sandbox_asgi.client() as client:
        cid = (await _create(client, email="old@x.io")).json()["contact"]["id"]
        await client.put(f"/contacts/{cid}", json={"email": "new@x.io"})
        reuse_old = await _create(client, email="old@x.io")
        clash_new = await _create(client, email="NEW@x.io")
    assert reuse_old.status_code == 201
    assert clash_new.status_code == 400
    assert clash_new.json()["meta"]["contactId"] == cid
