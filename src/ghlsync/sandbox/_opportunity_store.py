"""Opportunity records: pipeline/stage checks, changes with their webhook events, answers.

A record is kept in GHL's answer shape; `_followers` (internal) holds follower ids, because
the spec types `followers` in answers as an array of arrays.
"""

from __future__ import annotations

from typing import Any

from ghlsync.sandbox._deps import Ctx
from ghlsync.sandbox._errors import SandboxError, unprocessable
from ghlsync.sandbox._records import emit, get_or_404, now_iso, public
from ghlsync.sandbox._state import Record

EVENT_FIELDS = (
    "id",
    "assignedTo",
    "contactId",
    "monetaryValue",
    "name",
    "pipelineId",
    "pipelineStageId",
    "source",
    "status",
    "dateAdded",
)
# field that changed -> the event GHL sends for it (anything else: OpportunityUpdate)
_CHANGE_EVENTS = {
    "pipelineStageId": "OpportunityStageUpdate",
    "status": "OpportunityStatusUpdate",
    "monetaryValue": "OpportunityMonetaryValueUpdate",
    "assignedTo": "OpportunityAssignedToUpdate",
}
_ANSWER_FIELDS = (
    "id",
    "name",
    "monetaryValue",
    "pipelineId",
    "pipelineStageId",
    "assignedTo",
    "status",
    "source",
    "lastStatusChangeAt",
    "lastStageChangeAt",
    "createdAt",
    "updatedAt",
    "contactId",
    "locationId",
    "lostReasonId",
    "customFields",
)


def opportunity_of(ctx: Ctx, opportunity_id: str) -> Record:
    """A stored opportunity of the caller's location, or a 404."""
    return get_or_404(ctx.location.opportunities, opportunity_id, "Opportunity")


def answer(ctx: Ctx, opportunity: Record) -> Record:
    """The opportunity as GHL answers it, with the contact it belongs to."""
    shown = public({k: opportunity.get(k) for k in _ANSWER_FIELDS})
    contact = ctx.location.contacts.get(opportunity.get("contactId") or "")
    if contact is not None:
        keys = ("id", "name", "companyName", "email", "phone", "tags")
        shown["contact"] = public({k: contact.get(k) for k in keys})
    return shown


def event(ctx: Ctx, kind: str, opportunity: Record) -> None:
    """Queue an `Opportunity*` webhook event with the documented payload."""
    emit(ctx.state, ctx.location, kind, public({k: opportunity.get(k) for k in EVENT_FIELDS}))


def stage_ids(ctx: Ctx, pipeline_id: str) -> list[str]:
    """The stage ids of a pipeline in order; 400 for a pipeline the location lacks."""
    pipeline = ctx.location.pipelines.get(pipeline_id)
    if pipeline is None:
        raise SandboxError(400, "Pipeline not found")
    return [stage["id"] for stage in pipeline["stages"]]


def check_refs(ctx: Ctx, fields: dict[str, Any], current: Record | None = None) -> None:
    """Fill a missing stage with the pipeline's first; 400 for a stage or user elsewhere."""
    pipeline_id = fields.get("pipelineId") or (current or {}).get("pipelineId")
    if pipeline_id is None:
        raise unprocessable("pipelineId should not be empty")
    stages = stage_ids(ctx, pipeline_id)
    moved = current is not None and pipeline_id != current.get("pipelineId")
    if "pipelineStageId" not in fields and (current is None or moved):
        fields["pipelineStageId"] = stages[0] if stages else None
    if fields.get("pipelineStageId") is not None and fields["pipelineStageId"] not in stages:
        raise SandboxError(400, "Pipeline stage not found in this pipeline")
    assigned = fields.get("assignedTo")
    if assigned and assigned not in ctx.location.users:
        raise SandboxError(400, "Assigned user not found in this location")
    reason = fields.get("lostReasonId")
    if reason and reason not in ctx.location.lost_reasons:
        raise SandboxError(400, "Lost reason not found")


def create(ctx: Ctx, contact_id: str, fields: dict[str, Any]) -> Record:
    """A new opportunity (one per contact and pipeline, like GHL by default)."""
    if contact_id not in ctx.location.contacts:
        raise SandboxError(400, "Contact not found")
    check_refs(ctx, fields)
    if find(ctx, contact_id, fields["pipelineId"]) is not None:
        raise SandboxError(400, "Can not create duplicate opportunity for the contact.")
    now = now_iso(ctx.state)
    record: Record = {
        "id": ctx.state.new_id(),
        "locationId": ctx.location.id,
        "contactId": contact_id,
        "status": "open",
        "source": "api",
        "createdAt": now,
        "dateAdded": now,
        "lastStatusChangeAt": now,
        "lastStageChangeAt": now,
        "_followers": [],
    }
    record.update(fields)
    record.setdefault("name", _contact_name(ctx, contact_id))
    record["updatedAt"] = now
    ctx.location.opportunities[record["id"]] = record
    event(ctx, "OpportunityCreate", record)
    return record


def change(ctx: Ctx, record: Record, fields: dict[str, Any]) -> Record:
    """Apply `fields`, stamping and announcing what really changed."""
    check_refs(ctx, fields, record)
    changed = [k for k, v in fields.items() if record.get(k) != v]
    record.update(fields)
    now = now_iso(ctx.state)
    if not changed:
        return record
    record["updatedAt"] = now
    if "status" in changed:
        record["lastStatusChangeAt"] = now
    if "pipelineStageId" in changed or "pipelineId" in changed:
        record["lastStageChangeAt"] = now
    kinds = {_CHANGE_EVENTS.get(k, "OpportunityUpdate") for k in changed}
    if "pipelineId" in changed:
        kinds.discard("OpportunityUpdate")
        kinds.add("OpportunityStageUpdate")
    for kind in sorted(kinds):
        event(ctx, kind, record)
    return record


def find(ctx: Ctx, contact_id: str, pipeline_id: str) -> Record | None:
    """The contact's opportunity in a pipeline, if any."""
    for record in ctx.location.opportunities.values():
        if record.get("contactId") == contact_id and record.get("pipelineId") == pipeline_id:
            return record
    return None


def _contact_name(ctx: Ctx, contact_id: str) -> str:
    contact = ctx.location.contacts.get(contact_id) or {}
    return str(contact.get("name") or contact.get("email") or "Opportunity")
