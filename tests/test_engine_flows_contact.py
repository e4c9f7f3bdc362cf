"""Contact flow against the in-process sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx2
import pytest

from ghlsync.engine.flows.to_ghl._dispatch import sync_event
from ghlsync.mapping import MappedEntity, MappedEvent, MappingError
from tests._engine_flows_kit import CUSTOMER, Flow, with_transport
from tests._sandbox import InProcessSandbox


async def test_same_payload_again_costs_zero_calls(flow: Flow) -> None:
    await flow.sync("customer.created", **CUSTOMER)
    before = flow.requests()

    [out] = await flow.sync("customer.updated", **CUSTOMER)

    assert (out.action, out.calls, out.detail) == ("skipped", 0, "unchanged since the last sync")
    assert flow.requests() == before


async def test_changed_field_is_one_put_that_keeps_tags(flow: Flow) -> None:
    [first] = await flow.sync("customer.created", **CUSTOMER)
    before = len(flow.requests())

    [out] = await flow.sync("customer.updated", **{**CUSTOMER, "first_name": "Anna"})

    assert (out.action, out.calls) == ("updated", 1)
    assert flow.requests()[before:] == [("PUT", f"/contacts/{first.ghl_id}")]
    [contact] = flow.records("contacts")
    assert contact["firstName"] == "Anna"
    assert contact["tags"] == ["source:google"]  # a PUT with tags would have replaced them


async def test_tag_change_uses_only_the_tag_endpoints(flow: Flow) -> None:
    await flow.sync("customer.created", **{**CUSTOMER, "deal_stage": "Estimate"})
    before = len(flow.requests())

    [out] = await flow.sync("customer.updated", **{**CUSTOMER, "deal_stage": "Won"})

    ghl_id = out.ghl_id
    assert flow.requests()[before:] == [
        ("POST", f"/contacts/{ghl_id}/tags"),
        ("DELETE", f"/contacts/{ghl_id}/tags"),
    ]
    [contact] = flow.records("contacts")
    assert sorted(contact["tags"]) == ["deal:won", "source:google"]


async def test_hand_added_tags_survive_tag_deltas(flow: Flow) -> None:
    [first] = await flow.sync("customer.created", **{**CUSTOMER, "deal_stage": "Estimate"})
    [contact] = flow.records("contacts")
    contact["tags"].append("vip")  # someone tagged the contact in GHL

    await flow.sync("customer.updated", **{**CUSTOMER, "deal_stage": "Won"})

    assert sorted(flow.records("contacts")[0]["tags"]) == ["deal:won", "source:google", "vip"]
    assert first.ghl_id == flow.records("contacts")[0]["id"]


@pytest.mark.parametrize("shared", ["email", "phone"])
async def test_two_customers_that_are_one_person_share_one_contact(flow: Flow, shared: str) -> None:
    other = {"customer_id": "C2", "first_name": "Ann", "lead_source": "Google"}
    other[shared] = CUSTOMER[shared]
    [a] = await flow.sync("customer.created", **CUSTOMER)
    [b] = await flow.sync("customer.created", **other)

    assert a.ghl_id == b.ghl_id
    assert len(flow.records("contacts")) == 1


async def test_delete_removes_the_contact_and_tolerates_it_being_gone(flow: Flow) -> None:
    [first] = await flow.sync("customer.created", **CUSTOMER)
    delete = MappedEvent("customer.deleted", [MappedEntity("contact", "C1", "delete")])

    [out] = await sync_event(flow.ctx, delete)

    assert (out.action, out.ghl_id) == ("deleted", first.ghl_id)
    assert flow.requests()[-1] == ("DELETE", f"/contacts/{first.ghl_id}")
    assert flow.records("contacts") == [] and flow.row("contact", "C1") is None
    [again] = await sync_event(flow.ctx, delete)
    assert (again.action, again.calls) == ("skipped", 0)


async def test_delete_of_a_contact_already_gone_in_ghl_succeeds(flow: Flow) -> None:
    [first] = await flow.sync("customer.created", **CUSTOMER)
    location = flow.state.location(flow.ctx.location_id)
    assert location is not None and first.ghl_id is not None
    del location.contacts[first.ghl_id]  # deleted by hand in GHL

    delete = MappedEvent("customer.deleted", [MappedEntity("contact", "C1", "delete")])
    [out] = await sync_event(flow.ctx, delete)

    assert out.action == "deleted" and flow.row("contact", "C1") is None


async def test_delete_keeps_a_contact_another_customer_was_merged_into(flow: Flow) -> None:
    [a] = await flow.sync("customer.created", **CUSTOMER)
    await flow.sync("customer.created", customer_id="C2", email=CUSTOMER["email"])

    delete = MappedEvent("customer.deleted", [MappedEntity("contact", "C1", "delete")])
    [out] = await sync_event(flow.ctx, delete)

    assert (out.action, out.calls) == ("deleted", 0)
    assert out.detail == "GHL contact kept: shared with customer C2"
    assert [c["id"] for c in flow.records("contacts")] == [a.ghl_id]
    assert flow.row("contact", "C2") is not None


async def test_contact_without_email_or_phone_is_a_mapping_error(flow: Flow) -> None:
    with pytest.raises(MappingError, match="email/phone"):
        await flow.sync("customer.created", customer_id="C3", first_name="Nobody")
    assert flow.requests() == []


async def test_older_event_after_newer_is_skipped(flow: Flow) -> None:
    newer = {**CUSTOMER, "first_name": "New", "updated_at": "2026-11-02T10:00:00Z"}
    older = {**CUSTOMER, "first_name": "Old", "updated_at": "2026-11-01T10:00:00Z"}
    await flow.sync("customer.created", **newer)
    before = len(flow.requests())

    [out] = await flow.sync("customer.updated", **older)

    assert (out.action, out.calls) == ("skipped", 0)
    assert len(flow.requests()) == before
    assert flow.records("contacts")[0]["firstName"] == "New"


async def test_merge_into_an_existing_person_keeps_their_tags_but_replaces_prefixed_ones(
    flow: Flow,
) -> None:
    assert flow.ctx.client is not None
    await flow.ctx.client.request(
        "POST",
        "/contacts/",
        key="loc_sandbox",
        version="2021-07-28",
        json={"locationId": "loc_sandbox", "email": "ann@example.com", "tags": ["vip", "deal:old"]},
    )

    [out] = await flow.sync("customer.created", **{**CUSTOMER, "deal_stage": "Won"})

    [contact] = flow.records("contacts")
    assert out.ghl_id == contact["id"]
    assert sorted(contact["tags"]) == ["deal:won", "source:google", "vip"]


def _allow_duplicates(flow: Flow, allowed: bool) -> None:
    location = flow.state.location(flow.ctx.location_id)
    assert location is not None
    location.allow_duplicate_contact = allowed


async def test_new_contact_with_tags_is_one_create_once_the_rule_is_known(flow: Flow) -> None:
    settings = ("GET", f"/locations/{flow.ctx.location_id}")
    [first] = await flow.sync("customer.created", **{**CUSTOMER, "deal_stage": "Won"})
    assert (first.action, first.calls) == ("created", 2)  # the location's rule, read once
    assert flow.requests() == [settings, ("POST", "/contacts/")]

    [out] = await flow.sync("customer.created", customer_id="C2", email="bo@example.com")

    assert (out.action, out.calls) == ("created", 1)
    assert flow.requests()[2:] == [("POST", "/contacts/")]
    made = {c["id"]: c for c in flow.records("contacts")}
    assert sorted(made[str(first.ghl_id)]["tags"]) == ["deal:won", "source:google"]
    row = flow.row("contact", "C2")
    assert row is not None and (row.state, row.ghl_id) == ("confirmed", out.ghl_id)
    before = len(flow.requests())
    [again] = await flow.sync("customer.updated", **{**CUSTOMER, "deal_stage": "Won"})
    assert (again.action, again.calls) == ("skipped", 0)  # the snapshot knows the tags
    assert len(flow.requests()) == before


async def test_create_refused_as_duplicate_updates_the_person_and_keeps_their_tags(
    flow: Flow,
) -> None:
    assert flow.ctx.client is not None
    made = await flow.ctx.client.request(
        "POST",
        "/contacts/",
        key="loc_sandbox",
        version="2021-07-28",
        json={"locationId": "loc_sandbox", "phone": CUSTOMER["phone"], "tags": ["vip"]},
    )
    person = made["contact"]["id"]
    before = len(flow.requests())

    [out] = await flow.sync("customer.created", **CUSTOMER)

    assert (out.action, out.ghl_id) == ("created", person)
    assert flow.requests()[before:] == [
        ("GET", f"/locations/{flow.ctx.location_id}"),
        ("POST", "/contacts/"),  # refused: 400, the person's id in `meta.contactId`
        ("GET", "/contacts/search/duplicate"),  # matched by phone: is the email someone else's?
        ("PUT", f"/contacts/{person}"),
        ("POST", f"/contacts/{person}/tags"),
    ]
    [contact] = flow.records("contacts")  # no duplicate
    assert (contact["email"], contact["firstName"]) == ("ann@example.com", "Ann")
    assert sorted(contact["tags"]) == ["source:google", "vip"]  # nobody's tags lost
    row = flow.row("contact", "C1")
    assert row is not None and (row.state, row.ghl_id) == ("confirmed", person)
    [again] = await flow.sync("customer.updated", **CUSTOMER)
    assert (again.action, again.calls) == ("skipped", 0)


async def test_location_allowing_duplicates_keeps_the_upsert_path(flow: Flow) -> None:
    _allow_duplicates(flow, True)

    [out] = await flow.sync("customer.created", **CUSTOMER)
    [other] = await flow.sync("customer.created", customer_id="C2", email=CUSTOMER["email"])

    assert flow.requests() == [
        ("GET", f"/locations/{flow.ctx.location_id}"),
        ("POST", "/contacts/search"),  # nobody has the email or phone yet
        ("POST", "/contacts/upsert"),  # no tags: an upsert may merge into a person
        ("POST", f"/contacts/{out.ghl_id}/tags"),
        ("POST", "/contacts/search"),  # one contact has the email: C1's, linked
    ]
    assert other.ghl_id == out.ghl_id and len(flow.records("contacts")) == 1
    assert flow.records("contacts")[0]["tags"] == ["source:google"]


async def test_plan_follows_the_cached_rule(flow: Flow) -> None:
    unknown = await flow.plan("customer.created", **CUSTOMER)
    assert [(c.method, c.path) for c in unknown] == [  # never fetched by a preview
        ("POST", "/contacts/upsert"),
        ("POST", "/contacts/<new contact C1>/tags"),
    ]
    await flow.sync("customer.created", customer_id="C9", email="zed@example.com")

    [create] = await flow.plan("customer.created", **CUSTOMER)

    assert (create.method, create.path) == ("POST", "/contacts/")
    assert create.body is not None and create.body["tags"] == ["source:google"]


async def test_unreadable_rule_keeps_the_upsert_path_and_is_not_asked_per_contact(
    flow: Flow, sandbox_asgi: InProcessSandbox
) -> None:
    inner = sandbox_asgi.transport()

    async def refuse_settings(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == f"/locations/{flow.ctx.location_id}":
            return httpx2.Response(403, json={"statusCode": 403, "message": "scope missing"})
        response = await inner.handle_async_request(request)
        await response.aread()
        return response

    async with with_transport(flow, httpx2.MockTransport(refuse_settings)) as refused:
        [a] = await refused.sync("customer.created", **CUSTOMER)
        other = {"customer_id": "C2", "email": "bo@example.com", "lead_source": "Ads"}
        [b] = await refused.sync("customer.created", **other)

    assert (a.calls, b.calls) == (3, 2)  # the refused read (once), then upsert + tags each
    assert flow.requests() == [
        ("POST", "/contacts/upsert"),
        ("POST", f"/contacts/{a.ghl_id}/tags"),
        ("POST", "/contacts/upsert"),
        ("POST", f"/contacts/{b.ghl_id}/tags"),
    ]
