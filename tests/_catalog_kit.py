"""Sample values for catalog entries, derived from each input's type (and a few names).

A trigger's sample is the event body a Zap (DripJobs) or GHL would send; an action's sample is
the step input a recipe would give. Only what the type says is used, plus the names whose
value has a fixed vocabulary (statuses), so a new entry of a known type needs no new case.
"""

from __future__ import annotations

import itertools
from typing import Any

from ghlsync.engine.flows.recipes import InputSpec, TriggerSpec

_serial = itertools.count(1)

# Values whose vocabulary is fixed by the mapping or by GHL, by field name.
NAMED: dict[str, Any] = {
    "task_status": "open",
    "appointment_status": "confirmed",
    "status": "open",
    "altType": "location",
    "dnd": False,
    "tags": ["catalog"],
}
# Names an assignee is read from: a name the `users:` table must know, so left out.
SKIPPED = {"task_assignee", "appointment_assignee", "salesperson", "assignedTo"}


def value_for(spec: InputSpec, n: int) -> Any:
    """A value of `spec.type` (`email`, `phone`, `datetime`, `number`, ...)."""
    if spec.name in NAMED:
        return NAMED[spec.name]
    by_type: dict[str, Any] = {
        "email": f"catalog{n}@example.com",
        "phone": f"+1415555{n:04d}",
        "datetime": "2026-12-08T15:00:00Z",
        "date": "2026-12-08",
        "number": 125.5,
        "boolean": True,
        "list": [],
        "object": {},
    }
    return by_type.get(spec.type, f"{spec.name} {n}")


def dripjobs_body(trigger: TriggerSpec) -> dict[str, Any]:
    """The body a Zap would POST for a DripJobs trigger: every field its rules read."""
    n = next(_serial)
    body = {f.name: value_for(f, n) for f in trigger.fields if f.name not in SKIPPED}
    for f in trigger.fields:
        if f.required:
            body[f.name] = f"{f.name.removesuffix('_id')}-{n}"
    body["customer_id"] = body.get("customer_id", f"customer-{n}")
    return body


def ghl_event(trigger: TriggerSpec, location_id: str, contact_id: str) -> dict[str, Any]:
    """The event GHL would POST for a GHL trigger, about `contact_id` in `location_id`."""
    n = next(_serial)
    event: dict[str, Any] = {}
    for f in trigger.fields:
        if f.name in SKIPPED or f.type == "object":
            continue
        value = value_for(f, n) if f.type != "string" or f.name in NAMED else f"{f.name}-{n}"
        _put(event, f.name, value)
    event["type"] = trigger.id.removeprefix("ghl.")
    for path in ("locationId", "altId"):
        if path in {f.name for f in trigger.fields}:
            event[path] = location_id
    for path in ("contactId", "appointment.contactId"):
        if path in {f.name for f in trigger.fields}:
            _put(event, path, contact_id)
    if event["type"].startswith("Contact"):
        event["id"] = contact_id
    if event["type"].startswith("Invoice"):
        event["contactDetails"] = {"id": contact_id}
    return event


def _put(target: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        inner = target.setdefault(head, {})
        if isinstance(inner, dict):
            _put(inner, rest, value)
        return
    target[head] = value


# Step inputs, by name where the value must name something the sandbox has.
ACTION_NAMED: dict[str, Any] = {
    "workflow": "New lead nurture",
    "campaign": "Spring promotion",
    "pipeline": "Sales pipeline",
    "stage": "Won",
    "user": "Jane Roe",
    "assign": "Jane Roe",
    "followers": ["Jane Roe"],
    "tags": ["catalog"],
}
USERS = {"Jane Roe": "usr_sandbox"}  # the `users:` table the samples name


def action_value(spec: InputSpec, n: int, records: dict[str, str]) -> Any:
    """A step input of `spec.type`: a record id the test made (`task-id`, ...), a name the
    sandbox knows, an ISO date, the first choice of `a|b|c`, ..."""
    if spec.type.endswith("-id"):
        return records[spec.type]
    if spec.name in records:  # "calendar": the sandbox's
        return records[spec.name]
    if spec.name in ACTION_NAMED:
        return ACTION_NAMED[spec.name]
    by_type: dict[str, Any] = {
        "date": "2026-12-09T15:00:00+00:00",
        "number": 125.5,
        "boolean": True,
        "list[text]": [f"catalog {n}"],
        "mapping": {"email": f"catalog-step{n}@example.com"},
    }
    if spec.type in by_type:
        return by_type[spec.type]
    if "|" in spec.type:
        return spec.type.split("|")[0]
    return f"Catalog {spec.name} {n}"


def action_inputs(inputs: tuple[InputSpec, ...], records: dict[str, str]) -> dict[str, Any]:
    """Every input of an action, sampled."""
    n = next(_serial)
    return {spec.name: action_value(spec, n, records) for spec in inputs}
