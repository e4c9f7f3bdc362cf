"""GHL actions: what a recipe step can do in GHL, each one registered operation of the client.

Every `run(ctx, inputs)` gets inputs already checked, templated and with dates resolved, and
makes exactly one call (plus, once per location and window, a by-name lookup list). An action
that creates something (task, note, appointment) finds the object a lost earlier attempt made
(`ctx.pending`) before it creates another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ghlsync.engine.flows.recipes._context import StepContext, StepResult, operation_text
from ghlsync.engine.flows.recipes._names import resolve_name
from ghlsync.engine.flows.recipes._spec import ActionSpec, InputSpec
from ghlsync.engine.flows.to_ghl._pipelines import resolve
from ghlsync.engine.flows.to_ghl._records import answer_id, matches, records

Run = Callable[[StepContext, Mapping[str, Any]], Awaitable[StepResult]]


def _in(name: str, type_: str, required: bool = False, description: str = "") -> InputSpec:
    return InputSpec(name, type_, required, description)


def _user(ctx: StepContext, value: Any) -> str | None:
    """A GHL user id from a `users:` name, an event field naming one, or an id."""
    if not value:
        return None
    text = str(ctx.fields.get(str(value), value))
    users = ctx.config.users
    lowered = {k.casefold(): v for k, v in users.items()}
    # An unknown name leaves the record unassigned rather than sending GHL a non-id.
    return lowered.get(text.casefold()) or (text if text in users.values() else None)


async def _find(
    ctx: StepContext, list_op: str, keys: tuple[str, ...], body: Mapping[str, Any]
) -> str | None:
    """The record an earlier attempt of this step made, matched on `keys` of its body."""
    answer = await ctx.send(list_op, {"contactId": ctx.contact()})
    for record in records(answer, "tasks", "notes", "events"):
        if record.get("id") and matches(record, body, keys):
            return str(record["id"])
    return None


async def create_task(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body: dict[str, Any] = {"title": inputs["title"], "dueDate": inputs["due"], "completed": False}
    if inputs.get("description"):
        body["body"] = inputs["description"]
    assignee = _user(ctx, inputs.get("assign"))
    if assignee:
        body["assignedTo"] = assignee
    if ctx.pending is not None:
        found = await _find(ctx, "get-all-tasks", ("title", "dueDate"), body)
        if found:
            return StepResult(found, "found the task an earlier attempt created")
    answer = await ctx.send("create-task", {"contactId": ctx.contact()}, body)
    return StepResult(answer_id(answer, "task", "event"), f"task {body['title']!r}")


async def create_note(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = {"body": inputs["body"]}
    if ctx.pending is not None:
        found = await _find(ctx, "get-all-notes", ("body",), body)
        if found:
            return StepResult(found, "found the note an earlier attempt created")
    answer = await ctx.send("create-note", {"contactId": ctx.contact()}, body)
    return StepResult(answer_id(answer, "note", "event"), "note")


def _tags(inputs: Mapping[str, Any]) -> list[str]:
    return [str(t).strip() for t in inputs["tags"] if str(t).strip()]


async def add_tags(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    await ctx.send("add-tags", {"contactId": ctx.contact()}, {"tags": _tags(inputs)})
    return StepResult(ctx.contact_id, "tags + " + ", ".join(_tags(inputs)))


async def remove_tags(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    await ctx.send("remove-tags", {"contactId": ctx.contact()}, {"tags": _tags(inputs)})
    return StepResult(ctx.contact_id, "tags - " + ", ".join(_tags(inputs)))


async def add_to_workflow(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    workflow = await resolve_name(ctx, "workflow", str(inputs["workflow"]))
    body = {"eventStartTime": inputs["start"]} if inputs.get("start") else {}
    path = {"contactId": ctx.contact(), "workflowId": workflow}
    await ctx.send("add-contact-to-workflow", path, body)
    return StepResult(workflow, f"enrolled in workflow {inputs['workflow']!r}")


async def remove_from_workflow(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    workflow = await resolve_name(ctx, "workflow", str(inputs["workflow"]))
    path = {"contactId": ctx.contact(), "workflowId": workflow}
    await ctx.send("delete-contact-from-workflow", path, {})
    return StepResult(workflow, f"removed from workflow {inputs['workflow']!r}")


async def add_to_campaign(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    campaign = await resolve_name(ctx, "campaign", str(inputs["campaign"]))
    path = {"contactId": ctx.contact(), "campaignId": campaign}
    await ctx.send("add-contact-to-campaign", path, {})
    return StepResult(campaign, f"added to campaign {inputs['campaign']!r}")


async def remove_from_campaign(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    campaign = await resolve_name(ctx, "campaign", str(inputs["campaign"]))
    path = {"contactId": ctx.contact(), "campaignId": campaign}
    await ctx.send("remove-contact-from-campaign", path)
    return StepResult(campaign, f"removed from campaign {inputs['campaign']!r}")


async def remove_from_all_campaigns(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    await ctx.send("remove-contact-from-every-campaign", {"contactId": ctx.contact()})
    return StepResult(ctx.contact_id, "removed from every campaign")


def _followers(ctx: StepContext, inputs: Mapping[str, Any]) -> list[str]:
    return [u for u in (_user(ctx, f) for f in inputs["followers"]) if u]


async def add_followers(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = {"followers": _followers(ctx, inputs)}
    await ctx.send("add-followers-contact", {"contactId": ctx.contact()}, body)
    return StepResult(ctx.contact_id, "followers + " + ", ".join(body["followers"]))


async def remove_followers(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = {"followers": _followers(ctx, inputs)}
    await ctx.send("remove-followers-contact", {"contactId": ctx.contact()}, body)
    return StepResult(ctx.contact_id, "followers - " + ", ".join(body["followers"]))


async def set_dnd(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    on = bool(inputs.get("on", True))
    await ctx.send("update-contact", {"contactId": ctx.contact()}, {"dnd": on})
    return StepResult(ctx.contact_id, f"do not disturb {'on' if on else 'off'}")


async def update_contact(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    body = dict(inputs["fields"])
    await ctx.send("update-contact", {"contactId": ctx.contact()}, body)
    return StepResult(ctx.contact_id, "contact " + ", ".join(sorted(body)))


async def assign_contact(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    user = _user(ctx, inputs["user"])
    await ctx.send("update-contact", {"contactId": ctx.contact()}, {"assignedTo": user})
    return StepResult(ctx.contact_id, f"assigned to {inputs['user']}")


async def _opportunity(ctx: StepContext, inputs: Mapping[str, Any], **extra: Any) -> StepResult:
    stage = inputs.get("stage")
    pipeline_id, stage_id = await resolve(
        ctx.sender, ctx.location_id, ctx.clock, str(inputs["pipeline"]), stage, "recipe"
    )
    body: dict[str, Any] = {
        "pipelineId": pipeline_id,
        "locationId": ctx.location_id,
        "contactId": ctx.contact(),
        **extra,
    }
    if stage_id:
        body["pipelineStageId"] = stage_id
    for name, key in (("name", "name"), ("status", "status"), ("value", "monetaryValue")):
        if inputs.get(name) not in (None, ""):
            body[key] = inputs[name]
    answer = await ctx.send("Upsert-opportunity", body=body)
    return StepResult(answer_id(answer, "opportunity", "event"), _card_words(inputs))


def _card_words(inputs: Mapping[str, Any]) -> str:
    words = [f"card in {inputs['pipeline']!r}"]
    if inputs.get("stage"):
        words.append(f"stage {inputs['stage']!r}")
    if inputs.get("status"):
        words.append(f"status {inputs['status']}")
    return ", ".join(words)


async def upsert_opportunity(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    return await _opportunity(ctx, inputs)


async def move_opportunity(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    return await _opportunity(ctx, inputs)


async def set_opportunity_status(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    return await _opportunity(ctx, inputs)


async def create_appointment(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    calendar = inputs.get("calendar") or ctx.calendar_id
    body: dict[str, Any] = {
        "calendarId": calendar,
        "locationId": ctx.location_id,
        "contactId": ctx.contact(),
        "startTime": inputs["start"],
        "title": inputs.get("title") or "Appointment",
    }
    if inputs.get("end"):
        body["endTime"] = inputs["end"]
    if ctx.pending is not None:
        found = await _find(ctx, "get-appointments-for-contact", ("startTime",), body)
        if found:
            return StepResult(found, "found the appointment an earlier attempt created")
    answer = await ctx.send("create-appointment", body=body)
    return StepResult(answer_id(answer, "appointment", "event"), f"appointment {body['title']!r}")


_TEXT = "text"  # a string that may hold {field} templates
_DATE = "date"  # a relative date ("+1d 09:00", "{appointment_start} -1d") or ISO 8601
_TAGS = "list[text]"


def _spec(id_: str, description: str, operation: str, run: Run, *inputs: InputSpec) -> ActionSpec:
    return ActionSpec(id_, "ghl", description, inputs, operation_text(operation), run)


_PIPELINE = _in("pipeline", _TEXT, True, "pipeline name (or id) as GHL shows it")
_STAGE = _in("stage", _TEXT, False, "stage name within the pipeline")
_STATUS = _in("status", "open|won|lost|abandoned", False, "the card's status")

GHL_ACTIONS: tuple[ActionSpec, ...] = (
    _spec("create_task", "Create a task on the contact", "create-task", create_task,
          _in("title", _TEXT, True), _in("due", _DATE, True, "when the task is due"),
          _in("description", _TEXT), _in("assign", _TEXT, False, "user name from `users:`")),
    _spec("create_note", "Add a note to the contact", "create-note", create_note,
          _in("body", _TEXT, True)),
    _spec("add_tags", "Add tags to the contact", "add-tags", add_tags, _in("tags", _TAGS, True)),
    _spec("remove_tags", "Remove tags from the contact", "remove-tags", remove_tags,
          _in("tags", _TAGS, True)),
    _spec("add_to_workflow", "Enrol the contact in a workflow (by name)",
          "add-contact-to-workflow", add_to_workflow,
          _in("workflow", _TEXT, True, "workflow name (or id)"),
          _in("start", _DATE, False, "the workflow's event start time")),
    _spec("remove_from_workflow", "Take the contact out of a workflow (by name)",
          "delete-contact-from-workflow", remove_from_workflow, _in("workflow", _TEXT, True)),
    _spec("add_to_campaign", "Add the contact to a campaign (by name)",
          "add-contact-to-campaign", add_to_campaign, _in("campaign", _TEXT, True)),
    _spec("remove_from_campaign", "Remove the contact from a campaign (by name)",
          "remove-contact-from-campaign", remove_from_campaign, _in("campaign", _TEXT, True)),
    _spec("remove_from_all_campaigns", "Remove the contact from every campaign",
          "remove-contact-from-every-campaign", remove_from_all_campaigns),
    _spec("add_followers", "Add users as followers of the contact", "add-followers-contact",
          add_followers, _in("followers", _TAGS, True, "user names from `users:` or ids")),
    _spec("remove_followers", "Remove followers from the contact", "remove-followers-contact",
          remove_followers, _in("followers", _TAGS, True)),
    _spec("set_dnd", "Turn do-not-disturb on (or off) for the contact", "update-contact",
          set_dnd, _in("on", "boolean", False, "true (default) or false")),
    _spec("update_contact", "Set contact fields (GHL names, e.g. source, website)",
          "update-contact", update_contact, _in("fields", "mapping", True)),
    _spec("assign_contact", "Assign the contact to a user", "update-contact", assign_contact,
          _in("user", _TEXT, True, "user name from `users:` or an id")),
    _spec("upsert_opportunity", "Create or update the contact's card in a pipeline",
          "Upsert-opportunity", upsert_opportunity, _PIPELINE, _STAGE, _STATUS,
          _in("name", _TEXT), _in("value", "number", False, "monetary value")),
    _spec("move_opportunity", "Move the contact's card to a stage", "Upsert-opportunity",
          move_opportunity, _PIPELINE, InputSpec("stage", _TEXT, True), _STATUS),
    _spec("set_opportunity_status", "Mark the contact's card won, lost, open or abandoned",
          "Upsert-opportunity", set_opportunity_status, _PIPELINE,
          InputSpec("status", "open|won|lost|abandoned", True)),
    _spec("create_appointment", "Book an appointment for the contact", "create-appointment",
          create_appointment, _in("start", _DATE, True), _in("end", _DATE),
          _in("title", _TEXT), _in("calendar", _TEXT, False, "calendar id (default: config's)")),
)  # fmt: skip
