"""More GHL actions: work on the record a trigger is about (a task, note, appointment or card
by its id), the contact itself, its business, and the location's tags.

Each `run(ctx, inputs)` makes one registered call of the client (and, for a step that creates
something and may have been cut short before, one lookup of what an earlier attempt made).
An input typed `task-id`, `note-id`, `appointment-id`, `appointment-note-id`,
`opportunity-id` or `business-id` is that GHL record's id, usually a template of the trigger's
field (`task: "{id}"` for `ghl.TaskCreate`, `appointment: "{appointment.id}"`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ghlsync.engine.flows.recipes._actions_ghl import _user
from ghlsync.engine.flows.recipes._context import StepContext, StepResult, operation_text
from ghlsync.engine.flows.recipes._spec import ActionSpec, InputSpec
from ghlsync.engine.flows.to_ghl._records import answer_id, records

Run = Callable[[StepContext, Mapping[str, Any]], Awaitable[StepResult]]

_TEXT, _DATE, _LIST, _MAP = "text", "date", "list[text]", "mapping"
_STATUS = "open|won|lost|abandoned"


def _in(name: str, type_: str, required: bool = False, description: str = "") -> InputSpec:
    return InputSpec(name, type_, required, description)


def _id(inputs: Mapping[str, Any], name: str) -> str:
    return str(inputs[name]).strip()


# Tasks and notes of the contact


async def update_task(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body: dict[str, Any] = {}
    for name, key in (("title", "title"), ("description", "body"), ("due", "dueDate")):
        if inputs.get(name):
            body[key] = inputs[name]
    assignee = _user(ctx, inputs.get("assign"))
    if assignee:
        body["assignedTo"] = assignee
    task = _id(inputs, "task")
    await ctx.send("update-task", {"contactId": ctx.contact(), "taskId": task}, body)
    return StepResult(task, "task " + ", ".join(sorted(body)))


async def _task_done(ctx: StepContext, inputs: Mapping[str, Any], done: bool) -> StepResult:
    task = _id(inputs, "task")
    path = {"contactId": ctx.contact(), "taskId": task}
    await ctx.send("update-task-completed", path, {"completed": done})
    return StepResult(task, "task completed" if done else "task reopened")


async def complete_task(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    return await _task_done(ctx, inputs, True)


async def reopen_task(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    return await _task_done(ctx, inputs, False)


async def delete_task(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    task = _id(inputs, "task")
    await ctx.send("delete-task", {"contactId": ctx.contact(), "taskId": task})
    return StepResult(task, "task deleted")


async def update_note(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    note = _id(inputs, "note")
    body = {"body": inputs["body"]}
    await ctx.send("update-note", {"contactId": ctx.contact(), "id": note}, body)
    return StepResult(note, "note edited")


async def delete_note(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    note = _id(inputs, "note")
    await ctx.send("delete-note", {"contactId": ctx.contact(), "id": note})
    return StepResult(note, "note deleted")


# The contact


async def upsert_contact(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = {**dict(inputs["fields"]), "locationId": ctx.location_id}
    answer = await ctx.send("upsert-contact", body=body)
    return StepResult(answer_id(answer, "contact"), "contact " + ", ".join(sorted(body)))


async def create_contact(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = {**dict(inputs["fields"]), "locationId": ctx.location_id}
    if ctx.pending is not None:  # an earlier attempt may have made it: find it, never twice
        answer = await ctx.send("upsert-contact", body=body)
        return StepResult(answer_id(answer, "contact"), "found or made the contact")
    answer = await ctx.send("create-contact", body=body)
    return StepResult(answer_id(answer, "contact"), "new contact")


async def delete_contact(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    await ctx.send("delete-contact", {"contactId": ctx.contact()})
    return StepResult(ctx.contact_id, "contact deleted")


async def add_to_business(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    business = _id(inputs, "business")
    body = {"locationId": ctx.location_id, "ids": [ctx.contact()], "businessId": business}
    await ctx.send("add-remove-contact-from-business", body=body)
    return StepResult(business, "contact added to the business")


async def remove_from_business(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = {"locationId": ctx.location_id, "ids": [ctx.contact()], "businessId": None}
    await ctx.send("add-remove-contact-from-business", body=body)
    return StepResult(ctx.contact_id, "contact taken out of its business")


# Appointments


async def update_appointment(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body: dict[str, Any] = {}
    for name, key in (
        ("start", "startTime"),
        ("end", "endTime"),
        ("title", "title"),
        ("status", "appointmentStatus"),
    ):
        if inputs.get(name):
            body[key] = inputs[name]
    event = _id(inputs, "appointment")
    await ctx.send("edit-appointment", {"eventId": event}, body)
    return StepResult(event, "appointment " + ", ".join(sorted(body)))


async def cancel_appointment(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    event = _id(inputs, "appointment")
    await ctx.send("edit-appointment", {"eventId": event}, {"appointmentStatus": "cancelled"})
    return StepResult(event, "appointment cancelled")


async def delete_appointment(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    event = _id(inputs, "appointment")
    await ctx.send("delete-event", {"eventId": event}, {})
    return StepResult(event, "appointment deleted")


async def add_appointment_note(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    path = {"appointmentId": _id(inputs, "appointment")}
    body = {"body": inputs["body"]}
    if ctx.pending is not None:
        answer = await ctx.send("get-appointment-notes", path)
        for note in records(answer, "notes"):
            if note.get("id") and note.get("body") == body["body"]:
                return StepResult(str(note["id"]), "found the note an earlier attempt added")
    answer = await ctx.send("create-appointment-note", path, body)
    return StepResult(answer_id(answer, "note"), "appointment note")


async def update_appointment_note(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    note = _id(inputs, "note")
    path = {"appointmentId": _id(inputs, "appointment"), "noteId": note}
    await ctx.send("update-appointment-note", path, {"body": inputs["body"]})
    return StepResult(note, "appointment note edited")


async def delete_appointment_note(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    note = _id(inputs, "note")
    path = {"appointmentId": _id(inputs, "appointment"), "noteId": note}
    await ctx.send("delete-appointment-note", path)
    return StepResult(note, "appointment note deleted")


# Opportunities (a card by its id)


async def update_opportunity(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body: dict[str, Any] = {}
    for name, key in (("name", "name"), ("value", "monetaryValue"), ("status", "status")):
        if inputs.get(name) not in (None, ""):
            body[key] = inputs[name]
    card = _id(inputs, "opportunity")
    await ctx.send("update-opportunity", {"id": card}, body)
    return StepResult(card, "card " + ", ".join(sorted(body)))


async def update_opportunity_status(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    card = _id(inputs, "opportunity")
    await ctx.send("update-opportunity-status", {"id": card}, {"status": inputs["status"]})
    return StepResult(card, f"card {inputs['status']}")


async def assign_opportunity(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    card = _id(inputs, "opportunity")
    user = _user(ctx, inputs["user"])
    await ctx.send("update-opportunity", {"id": card}, {"assignedTo": user})
    return StepResult(card, f"card assigned to {inputs['user']}")


async def delete_opportunity(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    card = _id(inputs, "opportunity")
    await ctx.send("delete-opportunity", {"id": card})
    return StepResult(card, "card deleted")


def _followers(ctx: StepContext, inputs: Mapping[str, Any]) -> list[str]:
    return [u for u in (_user(ctx, f) for f in inputs["followers"]) if u]


async def add_opportunity_followers(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    card = _id(inputs, "opportunity")
    body = {"followers": _followers(ctx, inputs)}
    await ctx.send("add-followers-opportunity", {"id": card}, body)
    return StepResult(card, "card followers + " + ", ".join(body["followers"]))


async def remove_opportunity_followers(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    card = _id(inputs, "opportunity")
    body = {"followers": _followers(ctx, inputs)}
    await ctx.send("remove-followers-opportunity", {"id": card}, body)
    return StepResult(card, "card followers - " + ", ".join(body["followers"]))


# The location: tags and businesses


async def create_tag(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    path = {"locationId": ctx.location_id}
    name = str(inputs["tag"]).strip()
    if ctx.pending is not None:
        answer = await ctx.send("get-location-tags", path)
        for tag in records(answer, "tags"):
            if tag.get("id") and str(tag.get("name", "")).casefold() == name.casefold():
                return StepResult(str(tag["id"]), f"tag {name!r} is there")
    answer = await ctx.send("create-tag", path, {"name": name})
    return StepResult(answer_id(answer, "tag"), f"tag {name!r}")


async def create_business(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = {**dict(inputs.get("fields") or {}), "name": inputs["name"]}
    body["locationId"] = ctx.location_id
    if ctx.pending is not None:
        answer = await ctx.send(
            "get-businesses-by-location", params={"locationId": ctx.location_id}
        )
        for business in records(answer, "businesses"):
            if business.get("id") and business.get("name") == body["name"]:
                return StepResult(str(business["id"]), "found the business an earlier attempt made")
    answer = await ctx.send("create-business", body=body)
    made = answer_id(answer, "buiseness", "business")  # GHL's answer spells it "buiseness"
    return StepResult(made, f"business {body['name']!r}")


async def update_business(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    business = _id(inputs, "business")
    body = dict(inputs["fields"])
    await ctx.send("update-business", {"businessId": business}, body)
    return StepResult(business, "business " + ", ".join(sorted(body)))


async def delete_business(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    business = _id(inputs, "business")
    await ctx.send("delete-Business", {"businessId": business})
    return StepResult(business, "business deleted")


def _spec(id_: str, description: str, operation: str, run: Run, *inputs: InputSpec) -> ActionSpec:
    return ActionSpec(id_, "ghl", description, inputs, operation_text(operation), run)


_TASK = _in("task", "task-id", True, "the task's GHL id, e.g. {id} of ghl.TaskCreate")
_NOTE = _in("note", "note-id", True, "the note's GHL id")
_APPOINTMENT = _in("appointment", "appointment-id", True, "the appointment's GHL id")
_APPOINTMENT_NOTE = _in("note", "appointment-note-id", True, "the appointment note's id")
_CARD = _in("opportunity", "opportunity-id", True, "the card's GHL id, e.g. {id}")
_BUSINESS = _in("business", "business-id", True, "the business's GHL id")
_FOLLOWERS = _in("followers", _LIST, True, "user names from `users:` or ids")

MORE_ACTIONS: tuple[ActionSpec, ...] = (
    _spec("update_task", "Change a task of the contact (title, description, due, assignee)",
          "update-task", update_task, _TASK, _in("title", _TEXT), _in("description", _TEXT),
          _in("due", _DATE), _in("assign", _TEXT, False, "user name from `users:`")),
    _spec("complete_task", "Mark a task of the contact completed", "update-task-completed",
          complete_task, _TASK),
    _spec("reopen_task", "Mark a completed task of the contact open again",
          "update-task-completed", reopen_task, _TASK),
    _spec("delete_task", "Delete a task of the contact", "delete-task", delete_task, _TASK),
    _spec("update_note", "Replace the text of a note of the contact", "update-note",
          update_note, _NOTE, _in("body", _TEXT, True)),
    _spec("delete_note", "Delete a note of the contact", "delete-note", delete_note, _NOTE),
    _spec("upsert_contact", "Create or update a contact by email/phone (GHL field names)",
          "upsert-contact", upsert_contact, _in("fields", _MAP, True)),
    _spec("create_contact", "Create another contact (e.g. a referral; GHL field names)",
          "create-contact", create_contact, _in("fields", _MAP, True)),
    _spec("delete_contact", "Delete the contact in GHL", "delete-contact", delete_contact),
    _spec("add_to_business", "Attach the contact to a business (company)",
          "add-remove-contact-from-business", add_to_business, _BUSINESS),
    _spec("remove_from_business", "Detach the contact from its business",
          "add-remove-contact-from-business", remove_from_business),
    _spec("update_appointment", "Change an appointment (time, title, status)",
          "edit-appointment", update_appointment, _APPOINTMENT, _in("start", _DATE),
          _in("end", _DATE), _in("title", _TEXT),
          _in("status", "confirmed|cancelled|showed|noshow|invalid")),
    _spec("cancel_appointment", "Cancel an appointment", "edit-appointment",
          cancel_appointment, _APPOINTMENT),
    _spec("delete_appointment", "Delete an appointment", "delete-event", delete_appointment,
          _APPOINTMENT),
    _spec("add_appointment_note", "Add a note to an appointment", "create-appointment-note",
          add_appointment_note, _APPOINTMENT, _in("body", _TEXT, True)),
    _spec("update_appointment_note", "Replace the text of an appointment's note",
          "update-appointment-note", update_appointment_note, _APPOINTMENT, _APPOINTMENT_NOTE,
          _in("body", _TEXT, True)),
    _spec("delete_appointment_note", "Delete an appointment's note",
          "delete-appointment-note", delete_appointment_note, _APPOINTMENT, _APPOINTMENT_NOTE),
    _spec("update_opportunity", "Change a card by its id (name, value, status)",
          "update-opportunity", update_opportunity, _CARD, _in("name", _TEXT),
          _in("value", "number", False, "monetary value"), _in("status", _STATUS)),
    _spec("update_opportunity_status", "Mark a card (by its id) won, lost, open or abandoned",
          "update-opportunity-status", update_opportunity_status, _CARD,
          _in("status", _STATUS, True)),
    _spec("assign_opportunity", "Assign a card (by its id) to a user", "update-opportunity",
          assign_opportunity, _CARD, _in("user", _TEXT, True, "user name from `users:` or id")),
    _spec("delete_opportunity", "Delete a card by its id", "delete-opportunity",
          delete_opportunity, _CARD),
    _spec("add_opportunity_followers", "Add users as followers of a card",
          "add-followers-opportunity", add_opportunity_followers, _CARD, _FOLLOWERS),
    _spec("remove_opportunity_followers", "Remove followers from a card",
          "remove-followers-opportunity", remove_opportunity_followers, _CARD, _FOLLOWERS),
    _spec("create_tag", "Add a tag to the location's tag list", "create-tag", create_tag,
          _in("tag", _TEXT, True)),
    _spec("create_business", "Create a business (company) in the location", "create-business",
          create_business, _in("name", _TEXT, True), _in("fields", _MAP, False,
          "more business fields: phone, email, website, address, city, ...")),
    _spec("update_business", "Change a business's fields", "update-business", update_business,
          _BUSINESS, _in("fields", _MAP, True)),
    _spec("delete_business", "Delete a business", "delete-Business", delete_business,
          _BUSINESS),
)  # fmt: skip
