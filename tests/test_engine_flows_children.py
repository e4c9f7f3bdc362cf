"""Task, note and appointment flows against the in-process sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ghlsync.engine.flows.to_ghl._dispatch import sync_event
from ghlsync.engine.flows.to_ghl._model import ParentNotSyncedError
from ghlsync.mapping import MappingError
from tests._engine_flows_kit import CUSTOMER, Flow

TASK = {
    "customer_id": "C1",
    "task_id": "T1",
    "task_title": "Call back",
    "task_due": "2026-12-01T10:00:00Z",
}
NOTE = {"customer_id": "C1", "note_id": "N1", "note_body": "Wants a metal roof"}
APPT = {
    "customer_id": "C1",
    "appointment_id": "A1",
    "appointment_title": "Estimate",
    "appointment_start": "2026-12-02T15:00:00Z",
}


async def _contact(flow: Flow) -> str:
    [out] = await flow.sync("customer.created", **CUSTOMER)
    assert out.ghl_id is not None
    return out.ghl_id


async def test_task_create_update_complete_reopen_delete(flow: Flow) -> None:
    contact_id = await _contact(flow)
    start = len(flow.requests())

    [created] = await flow.sync("task.created", **TASK)
    [same] = await flow.sync("task.updated", **TASK)
    [updated] = await flow.sync("task.updated", **{**TASK, "task_title": "Call back soon"})
    [completed] = await flow.sync("task.completed", **{**TASK, "task_title": "Call back soon"})
    [reopened] = await flow.sync(
        "task.updated", **{**TASK, "task_title": "Call back soon", "task_status": "open"}
    )

    base = f"/contacts/{contact_id}/tasks"
    tid = created.ghl_id
    assert [o.action for o in (created, same, updated, completed, reopened)] == [
        "created", "skipped", "updated", "completed", "reopened",
    ]  # fmt: skip
    assert flow.requests()[start:] == [
        ("POST", base),
        ("PUT", f"{base}/{tid}"),
        ("PUT", f"{base}/{tid}/completed"),
        ("PUT", f"{base}/{tid}/completed"),
    ]
    [task] = flow.records("tasks")
    assert (task["title"], task["completed"], task["contactId"]) == (
        "Call back soon", False, contact_id,
    )  # fmt: skip

    [deleted] = await flow.sync("task.deleted", customer_id="C1", task_id="T1")
    assert deleted.action == "deleted" and flow.records("tasks") == []
    assert flow.requests()[-1] == ("DELETE", f"{base}/{tid}")
    assert flow.row("task", "T1") is None


async def test_task_event_with_customer_fields_syncs_the_contact_first(flow: Flow) -> None:
    outcomes = await flow.sync("task.created", **{**TASK, **CUSTOMER})

    assert [(o.entity_type, o.action) for o in outcomes] == [
        ("contact", "created"), ("task", "created"),
    ]  # fmt: skip
    [task] = flow.records("tasks")
    assert task["contactId"] == outcomes[0].ghl_id


async def test_task_of_an_unknown_customer_waits_for_the_customer(flow: Flow) -> None:
    with pytest.raises(ParentNotSyncedError, match="C1"):
        await flow.sync("task.created", **TASK)
    assert flow.requests() == [] and flow.row("task", "T1") is None


async def test_note_create_update(flow: Flow) -> None:
    contact_id = await _contact(flow)
    start = len(flow.requests())

    [created] = await flow.sync("note.created", **NOTE)
    [same] = await flow.sync("note.updated", **NOTE)
    [updated] = await flow.sync("note.updated", **{**NOTE, "note_body": "Metal roof, red"})

    assert [o.action for o in (created, same, updated)] == ["created", "skipped", "updated"]
    base = f"/contacts/{contact_id}/notes"
    assert flow.requests()[start:] == [("POST", base), ("PUT", f"{base}/{created.ghl_id}")]
    [note] = flow.records("notes")
    assert note["body"] == "Metal roof, red"


async def test_appointment_schedule_update_cancel(flow: Flow) -> None:
    contact_id = await _contact(flow)
    start = len(flow.requests())

    [created] = await flow.sync("appointment.scheduled", **APPT)
    [same] = await flow.sync("appointment.updated", **APPT)
    moved = {**APPT, "appointment_start": "2026-12-03T15:00:00Z"}
    [updated] = await flow.sync("appointment.updated", **moved)
    [cancelled] = await flow.sync("appointment.canceled", **moved)

    assert [o.action for o in (created, same, updated, cancelled)] == [
        "created", "skipped", "updated", "cancelled",
    ]  # fmt: skip
    path = f"/calendars/events/appointments/{created.ghl_id}"
    assert flow.requests()[start:] == [
        ("POST", "/calendars/events/appointments"),
        ("PUT", path),
        ("PUT", path),
    ]
    [appt] = flow.records("appointments")
    assert (appt["contactId"], appt["calendarId"]) == (contact_id, flow.ctx.calendar_id)
    assert appt["appointmentStatus"] == "cancelled"
    assert appt["startTime"].startswith("2026-12-03")


async def test_same_appointment_re_sent_after_its_cancel_costs_nothing(flow: Flow) -> None:
    await _contact(flow)
    [created] = await flow.sync("appointment.scheduled", **APPT)
    await flow.sync("appointment.canceled", **APPT)
    start = len(flow.requests())

    # The preset adds `ignoreFreeSlotValidation` to updates: a request option, not a change.
    [same] = await flow.sync("appointment.updated", **APPT)
    moved = {**APPT, "appointment_start": "2026-12-03T15:00:00Z"}
    [planned] = await flow.plan("appointment.updated", **moved)
    [real] = await flow.sync("appointment.updated", **moved)

    assert (same.calls, real.calls) == (0, 1)
    path = f"/calendars/events/appointments/{created.ghl_id}"
    assert flow.requests()[start:] == [("PUT", path)]
    assert planned.body is not None
    assert planned.body["ignoreFreeSlotValidation"] is True  # still sent with a real change
    assert flow.records("appointments")[0]["startTime"].startswith("2026-12-03")


async def test_cancel_of_an_unknown_appointment_creates_nothing(flow: Flow) -> None:
    await _contact(flow)
    start = len(flow.requests())

    [out] = await flow.sync("appointment.canceled", **APPT)

    assert (out.action, out.calls) == ("skipped", 0)
    assert flow.requests()[start:] == [] and flow.records("appointments") == []


async def test_an_older_update_arriving_after_the_delete_does_not_resurrect(flow: Flow) -> None:
    await _contact(flow)
    await flow.sync("task.created", **TASK, updated_at="2026-11-01T10:00:00Z")
    await flow.sync(
        "task.deleted", customer_id="C1", task_id="T1", updated_at="2026-11-03T10:00:00Z"
    )
    start = len(flow.requests())

    [late] = await flow.sync("task.updated", **TASK, updated_at="2026-11-02T10:00:00Z")

    assert (late.action, late.calls) == ("skipped", 0)
    assert flow.records("tasks") == [] and flow.requests()[start:] == []


async def test_appointment_without_a_calendar_is_a_clear_mapping_error(flow: Flow) -> None:
    await _contact(flow)
    start = len(flow.requests())

    with pytest.raises(MappingError, match="calendar"):
        await sync_event(
            replace(flow.ctx, calendar_id=None), flow.event("appointment.scheduled", **APPT)
        )

    assert flow.requests()[start:] == [] and flow.row("appointment", "A1") is None
