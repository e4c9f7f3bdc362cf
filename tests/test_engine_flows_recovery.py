"""Exactly once: a create whose answer was lost, or whose id was never recorded, is found
again by lookup and never made twice (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from ghlsync.ghl._errors import OutcomeUnknownError
from tests._engine_flows_kit import CUSTOMER, Flow, lose_answer, with_transport
from tests._sandbox import InProcessSandbox

CHILDREN: dict[str, tuple[str, dict[str, Any], str]] = {
    "task": (
        "task.created",
        {"task_id": "T1", "task_title": "Call", "task_due": "2026-12-01T10:00:00Z"},
        "tasks",
    ),
    "note": ("note.created", {"note_id": "N1", "note_body": "Roof: metal"}, "notes"),
    "appointment": (
        "appointment.scheduled",
        {"appointment_id": "A1", "appointment_title": "Estimate",
         "appointment_start": "2026-12-02T15:00:00Z"},
        "appointments",
    ),
}  # fmt: skip


def _is_create(request: httpx2.Request) -> bool:
    return request.method == "POST" and not request.url.path.endswith(("/tags", "/search"))


@pytest.mark.parametrize(
    ("duplicates", "create"), [(False, "/contacts/"), (True, "/contacts/upsert")]
)
async def test_lost_create_answer_is_resolved_by_duplicate_search(
    flow: Flow, sandbox_asgi: InProcessSandbox, duplicates: bool, create: str
) -> None:
    location = flow.state.location(flow.ctx.location_id)
    assert location is not None
    location.allow_duplicate_contact = duplicates  # picks the create: one call or upsert + tags
    async with with_transport(flow, lose_answer(sandbox_asgi.transport(), _is_create)) as lossy:
        with pytest.raises(OutcomeUnknownError):
            await lossy.sync("customer.created", **CUSTOMER)
        row = flow.row("contact", "C1")
        assert row is not None and (row.state, row.ghl_id) == ("pending", None)
        assert len(flow.records("contacts")) == 1  # the write did happen

        [out] = await lossy.sync("customer.created", **CUSTOMER)

    [contact] = flow.records("contacts")
    assert (out.action, out.ghl_id) == ("created", contact["id"])
    assert flow.requests().count(("POST", create)) == 1
    assert ("GET", "/contacts/search/duplicate") in flow.requests()
    assert contact["tags"] == ["source:google"]  # the tags the lost run never sent
    row = flow.row("contact", "C1")
    assert row is not None and (row.state, row.ghl_id) == ("confirmed", contact["id"])
    [again] = await flow.sync("customer.updated", **CUSTOMER)
    assert (again.action, again.calls) == ("skipped", 0)


@pytest.mark.parametrize("kind", sorted(CHILDREN))
async def test_lost_child_create_answer_is_resolved_by_listing_the_contact(
    flow: Flow, sandbox_asgi: InProcessSandbox, kind: str
) -> None:
    event, fields, records = CHILDREN[kind]
    [contact] = await flow.sync("customer.created", **CUSTOMER)
    payload = {"customer_id": "C1", **fields}
    async with with_transport(flow, lose_answer(sandbox_asgi.transport(), _is_create)) as lossy:
        with pytest.raises(OutcomeUnknownError):
            await lossy.sync(event, **payload)
        [made] = flow.records(records)

        [out] = await lossy.sync(event, **payload)

    assert flow.records(records) == [made]
    assert (out.action, out.ghl_id) == ("created", made["id"])
    assert ("GET", f"/contacts/{contact.ghl_id}/{records}") in flow.requests()
    [again] = await flow.sync(event, **payload)
    assert (again.action, again.calls) == ("skipped", 0)


class Crash(BaseException):
    """The process dies (kill -9): nothing after this point runs."""


def _crash(request: httpx2.Request) -> BaseException:
    return Crash(f"killed after {request.method} {request.url.path} was applied")


@pytest.mark.parametrize("kind", ["contact", *sorted(CHILDREN)])
async def test_crash_before_recording_the_id_is_confirmed_next_run(
    flow: Flow, sandbox_asgi: InProcessSandbox, kind: str
) -> None:
    if kind == "contact":
        event, payload, records = "customer.created", CUSTOMER, "contacts"
    else:
        await flow.sync("customer.created", **CUSTOMER)
        event, fields, records = CHILDREN[kind]
        payload = {"customer_id": "C1", **fields}
    source_id = str(payload.get(f"{kind}_id") or payload["customer_id"])
    dying = lose_answer(sandbox_asgi.transport(), _is_create, error=_crash)
    async with with_transport(flow, dying) as doomed:
        with pytest.raises(Crash):
            await doomed.sync(event, **payload)
    row = flow.row(kind, source_id)
    assert row is not None and (row.state, row.ghl_id) == ("pending", None)
    [made] = flow.records(records)

    outcomes = await flow.sync(event, **payload)  # the next run, with a fresh client

    assert [r["id"] for r in flow.records(records)] == [made["id"]]
    assert (outcomes[-1].action, outcomes[-1].ghl_id) == ("created", made["id"])
    row = flow.row(kind, source_id)
    assert row is not None and (row.state, row.ghl_id) == ("confirmed", made["id"])
