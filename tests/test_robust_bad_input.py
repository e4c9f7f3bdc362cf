"""Bad input end to end: real HTTP to the receiver, the real worker, the sandbox as GHL.

The receiver's own tests check each HTTP answer; these check the consequences: what GHL ends up
holding, what the dead letters say, and that nothing stops the worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ghlsync.store._tables_engine import inbox, work_items
from tests._robust_kit import Rig

Body = dict[str, Any]


def customer(n: int, stamp: str = "2026-12-01T10:00:00Z", **fields: Any) -> Body:
    """A full DripJobs customer, changed at `stamp`."""
    return {
        "customer_id": f"cust-{n}",
        "first_name": "Ava",
        "last_name": "Reyes",
        "email": f"ava.{n}@example.com",
        "phone": f"(512) 555-{1000 + n:04d}",
        "updated_at": stamp,
        **fields,
    }


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    """Sandbox, store, receiver and a running worker."""
    async with Rig(database_url) as started:
        started.start_worker()
        yield started


def by_email(location: dict[str, Any], email: str) -> list[dict[str, Any]]:
    return [c for c in location["contacts"] if str(c.get("email", "")).lower() == email]


# ------------------------------------------------------------------------------ duplicates


async def test_duplicate_deliveries_reach_ghl_once(rig: Rig) -> None:
    first = customer(1, delivery_id="dlv-1")
    assert (await rig.post("lead.created", first)).status_code == 202
    assert (await rig.post("lead.created", first)).status_code == 200  # Zapier retried it
    unkeyed = customer(2)  # no delivery id: deduplicated on a hash of the body
    assert (await rig.post("customer.created", unkeyed)).status_code == 202
    assert (await rig.post("customer.created", unkeyed)).status_code == 200
    await rig.drain()
    # The same data again under a new id is a new delivery, but a no-op for GHL.
    assert (await rig.post("lead.created", {**first, "delivery_id": "dlv-2"})).status_code == 202
    await rig.drain()

    location = await rig.location()
    assert len(by_email(location, "ava.1@example.com")) == 1
    assert len(by_email(location, "ava.2@example.com")) == 1
    calls = await rig.calls()
    assert calls.count(("POST", "/contacts/")) == 2  # new contacts: one create each
    assert not [c for c in calls if c[0] == "PUT"]
    assert rig.count(inbox) == 3


# ------------------------------------------------------------------------------- ordering


@pytest.mark.parametrize("synced_between", [True, False], ids=["after-sync", "queued-together"])
async def test_an_older_update_never_wins(database_url: str, synced_between: bool) -> None:
    newer = customer(1, "2026-12-01T10:00:00Z", last_name="Newer")
    # Queued together, the older one may still fill a field the newer one lacks (the merge
    # rule); after the sync it carries nothing new, so it must cost no call at all.
    extra = {} if synced_between else {"city": "Tampa"}
    older = customer(1, "2026-12-01T09:00:00Z", last_name="Older", **extra)
    async with Rig(database_url) as rig:
        if synced_between:
            rig.start_worker()
        assert (await rig.post("customer.updated", newer)).status_code == 202
        if synced_between:
            await rig.drain()
        assert (await rig.post("customer.updated", older)).status_code == 202
        if not synced_between:
            rig.start_worker()
        await rig.drain()
        (contact,) = by_email(await rig.location(), "ava.1@example.com")
        calls = await rig.calls()

    assert contact["lastName"] == "Newer"
    if synced_between:
        assert ("PUT", f"/contacts/{contact['id']}") not in calls
    else:
        assert contact.get("city") == "Tampa"
        assert calls.count(("POST", "/contacts/")) == 1


async def test_a_childs_timestamp_does_not_block_its_contacts_own_update(rig: Rig) -> None:
    """Different Zaps deliver in no particular order: the customer's rename (10:10) may come
    after a task event (10:30) that carried only the customer's email. The task's
    `updated_at` is the task's time, not the customer's, so the rename must still apply."""
    assert (
        await rig.post("customer.created", customer(1, "2026-12-01T10:00:00Z"))
    ).status_code == 202
    await rig.drain()
    task = {
        "customer_id": "cust-1",
        "email": "ava.1@example.com",
        "task_id": "task-1",
        "task_title": "Call back",
        "updated_at": "2026-12-01T10:30:00Z",
    }
    assert (await rig.post("task.created", task)).status_code == 202
    await rig.drain()
    renamed = customer(1, "2026-12-01T10:10:00Z", last_name="Okafor")
    assert (await rig.post("customer.updated", renamed)).status_code == 202
    await rig.drain()

    (contact,) = by_email(await rig.location(), "ava.1@example.com")
    assert contact["lastName"] == "Okafor"


async def test_a_late_child_event_does_not_roll_its_contact_back(rig: Rig) -> None:
    """The other side of the rule above: a task event stamped 10:05 that carries the
    customer's fields as they were then must not undo the customer's own 10:10 change."""
    created = customer(1, "2026-12-01T10:00:00Z", deal_stage="Estimate")
    assert (await rig.post("deal.stage_changed", created)).status_code == 202
    renamed = customer(1, "2026-12-01T10:10:00Z", last_name="Okafor", deal_stage="Won")
    assert (await rig.post("deal.stage_changed", renamed)).status_code == 202
    await rig.drain()
    late_task = {
        **customer(1, "2026-12-01T10:05:00Z", deal_stage="Estimate"),
        "task_id": "task-1",
        "task_title": "Call back",
    }
    assert (await rig.post("task.created", late_task)).status_code == 202
    await rig.drain()

    location = await rig.location()
    (contact,) = by_email(location, "ava.1@example.com")
    assert (contact["lastName"], sorted(contact["tags"])) == ("Okafor", ["deal:won"])
    assert [t["contactId"] for t in location["tasks"]] == [contact["id"]]


async def test_a_late_update_does_not_resurrect_a_deleted_task(rig: Rig) -> None:
    task = {"customer_id": "cust-1", "task_id": "task-1", "task_title": "Call back"}
    assert (await rig.post("customer.created", customer(1))).status_code == 202
    created = {**task, "updated_at": "2026-12-01T10:00:00Z"}
    assert (await rig.post("task.created", created)).status_code == 202
    await rig.drain()
    assert len((await rig.location())["tasks"]) == 1
    deleted = {**task, "updated_at": "2026-12-01T10:30:00Z"}
    assert (await rig.post("task.deleted", deleted)).status_code == 202
    await rig.drain()
    late = {**task, "task_title": "Call back soon", "updated_at": "2026-12-01T10:10:00Z"}
    assert (await rig.post("task.updated", late)).status_code == 202
    await rig.drain()

    assert (await rig.location())["tasks"] == []
    assert rig.dead_letters() == []


# ------------------------------------------------------------------------ children first


async def test_a_note_before_its_customer_waits_for_the_customer(rig: Rig) -> None:
    note = {"customer_id": "cust-1", "note_id": "note-1", "note_body": "Wants a fence."}
    assert (await rig.post("note.created", note)).status_code == 202
    # The customer's own event is just behind: the note is retried, not given up on.
    assert (await rig.post("customer.created", customer(1))).status_code == 202
    await rig.drain()

    location = await rig.location()
    (contact,) = by_email(location, "ava.1@example.com")
    assert [(n["contactId"], n["body"]) for n in location["notes"]] == [
        (contact["id"], "Wants a fence.")
    ]
    assert rig.dead_letters() == []


async def test_a_note_carrying_its_customer_creates_the_contact_first(rig: Rig) -> None:
    note = {"customer_id": "cust-1", "email": "ava.1@example.com", "first_name": "Ava"}
    body = {**note, "note_id": "note-1", "note_body": "Wants a deck."}
    assert (await rig.post("note.created", body)).status_code == 202
    await rig.drain()

    location = await rig.location()
    (contact,) = by_email(location, "ava.1@example.com")
    assert [(n["contactId"], n["body"]) for n in location["notes"]] == [
        (contact["id"], "Wants a deck.")
    ]
    calls = await rig.calls()
    assert calls.index(("POST", "/contacts/")) < calls.index(
        ("POST", f"/contacts/{contact['id']}/notes")
    )


async def test_a_note_for_a_customer_never_seen_is_dead_lettered_naming_it(rig: Rig) -> None:
    note = {"customer_id": "cust-404", "note_id": "note-1", "note_body": "Orphan."}
    assert (await rig.post("note.created", note)).status_code == 202
    await rig.drain()

    (letter,) = rig.dead_letters()
    assert (letter.entity_type, letter.source_id) == ("note", "note-1")
    assert "cust-404" in letter.reason
    assert letter.attempts == rig.max_attempts
    location = await rig.location()
    assert location["contacts"] == [] and location["notes"] == []


# -------------------------------------------------------------------- refused at the door


async def test_refused_deliveries_store_nothing_and_reach_ghl_never(rig: Rig) -> None:
    good = customer(1)
    answers = {
        "unknown event": await rig.post("invoice.paid", good),
        "malformed JSON": await rig.post("customer.created", content=b'{"customer_id": "c'),
        "wrong secret": await rig.post("customer.created", good, secret="not-the-secret"),
        "oversized": await rig.post("customer.created", {**good, "notes": "x" * 300_000}),
        "missing id": await rig.post("customer.created", {**good, "customer_id": None}),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "unknown event": 404,
        "malformed JSON": 400,
        "wrong secret": 401,
        "oversized": 413,
        "missing id": 400,
    }
    assert rig.count(inbox) == 0 and rig.count(work_items) == 0
    # The worker is alive and well: the next good delivery syncs.
    assert (await rig.post("customer.created", good)).status_code == 202
    await rig.drain()
    assert len((await rig.location())["contacts"]) == 1
    paths = {path for _, path in await rig.calls()}
    assert paths == {"/contacts/", f"/locations/{rig.pipe.location_id}"}  # + the rule


# ------------------------------------------------------------------- accepted, unmappable


UNMAPPABLE: dict[str, tuple[str, Body, str]] = {
    "bad email": ("customer.created", {"email": "not-an-email"}, "email"),
    "bad phone": ("customer.created", {"phone": "12"}, "phone"),
    "no email or phone": ("customer.created", {"email": None, "phone": None}, "email"),
    "bad due date": ("task.created", {"task_id": "t-1", "task_due": "someday"}, "task_due"),
    "note without body": ("note.created", {"note_id": "n-1"}, "note_body"),
    "a list for a name": ("customer.created", {"first_name": ["Ava", "Ben"]}, "first_name"),
    # The sender maps `appointment_start`; GHL's own name for it (startTime) is no help.
    "appointment without start": (
        "appointment.scheduled",
        {"appointment_id": "a-1"},
        "appointment_start",
    ),
}


@pytest.mark.parametrize("case", list(UNMAPPABLE), ids=list(UNMAPPABLE))
async def test_unmappable_values_are_dead_lettered_naming_the_field(rig: Rig, case: str) -> None:
    event, fields, field_name = UNMAPPABLE[case]
    bad = {k: v for k, v in {**customer(1), **fields}.items() if v is not None}
    assert (await rig.post(event, bad)).status_code == 202
    await rig.drain()

    (letter,) = rig.dead_letters()
    assert field_name in letter.reason, letter.reason
    assert letter.error_class == "MappingError"
    assert letter.event == event
    location = await rig.location()
    assert location["tasks"] == location["notes"] == location["appointments"] == []
    # Fixed data for the same record leaves the dead letter behind and syncs.
    fixed = {
        **customer(1, "2026-12-01T11:00:00Z"),
        **{k: v for k, v in fields.items() if k.endswith("_id")},
    }
    if event != "customer.created":
        fixed.update(_child_fix(event))
    assert (await rig.post(event, fixed)).status_code == 202
    await rig.drain()
    location = await rig.location()
    assert len(by_email(location, "ava.1@example.com")) == 1
    children = sum(len(location[kind]) for kind in ("tasks", "notes", "appointments"))
    assert children == int(event != "customer.created")


def _child_fix(event: str) -> Body:
    if event == "task.created":
        return {"task_title": "Call back", "task_due": "2026-12-05"}
    if event == "appointment.scheduled":
        return {"appointment_start": "2026-12-05T15:00:00Z"}
    return {"note_body": "Fixed."}
