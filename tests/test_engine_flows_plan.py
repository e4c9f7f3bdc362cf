"""`plan`: the calls a sync would make, given the store, sending and recording nothing."""

from __future__ import annotations

from dataclasses import replace

from ghlsync.engine.flows.to_ghl._dispatch import plan, sync_event
from ghlsync.mapping import MappedEntity, MappedEvent
from tests._engine_flows_kit import CUSTOMER, Flow

TASK = {"task_id": "T1", "task_title": "Call", "task_due": "2026-12-01T10:00:00Z"}


async def test_plan_on_an_empty_store_shows_the_first_sync(flow: Flow) -> None:
    offline = replace(flow.ctx, client=None)  # a preview needs no credentials
    calls = await plan(offline, flow.event("task.created", **CUSTOMER, **TASK))

    new_contact = "<new contact C1>"
    assert [(c.method, c.path) for c in calls] == [
        ("POST", "/contacts/upsert"),
        ("POST", f"/contacts/{new_contact}/tags"),
        ("POST", f"/contacts/{new_contact}/tasks"),
    ]
    assert calls[0].body == {
        "firstName": "Ann",
        "lastName": "Lee",
        "email": "ann@example.com",
        "phone": "+14155552671",
        "source": "Google",
        "locationId": "loc_sandbox",
    }
    assert calls[1].body == {"tags": ["source:google"]}
    assert calls[2].body is not None and calls[2].body["title"] == "Call"
    assert calls[2].body["completed"] is False  # GHL requires it on create
    assert flow.requests() == []  # nothing was sent
    assert flow.row("contact", "C1") is None  # nothing was recorded


async def test_plan_after_sync_shows_only_the_delta(flow: Flow) -> None:
    [synced] = await flow.sync("customer.created", **CUSTOMER)
    sent = len(flow.requests())

    assert await flow.plan("customer.updated", **CUSTOMER) == []
    [put] = await flow.plan("customer.updated", **{**CUSTOMER, "city": "Austin"})

    assert put.as_dict() == {
        "method": "PUT",
        "path": f"/contacts/{synced.ghl_id}",
        "body": {"city": "Austin"},
        "purpose": "update",
    }
    assert len(flow.requests()) == sent


async def test_plan_of_a_delete_names_the_mapped_id(flow: Flow) -> None:
    [synced] = await flow.sync("customer.created", **CUSTOMER)
    event = MappedEvent("customer.deleted", [MappedEntity("contact", "C1", "delete")])

    [call] = await plan(flow.ctx, event)

    assert (call.method, call.path) == ("DELETE", f"/contacts/{synced.ghl_id}")
    assert flow.row("contact", "C1") is not None  # the preview forgot nothing
    [out] = await sync_event(flow.ctx, event)
    assert out.action == "deleted"
