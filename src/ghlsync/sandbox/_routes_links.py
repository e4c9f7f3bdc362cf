"""Contact links: followers, campaigns, workflows, bulk tags and bulk business association."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body

from ghlsync.sandbox import _contacts
from ghlsync.sandbox._deps import CtxDep
from ghlsync.sandbox._models import BulkBusiness, BulkTags, Followers, Workflow
from ghlsync.sandbox._records import now_iso
from ghlsync.sandbox._routes_contacts import require_contact

router = APIRouter()


@router.post("/contacts/{contactId}/followers", status_code=201)
async def add_followers(ctx: CtxDep, contactId: str, body: Followers) -> dict[str, Any]:
    """Add followers (user ids) to a contact."""
    with ctx.state.lock:
        contact = require_contact(ctx, contactId)
        before = list(contact.get("followers", []))
        contact["followers"] = list(dict.fromkeys([*before, *body.followers]))
        added = [f for f in body.followers if f not in before]
        return {"followers": contact["followers"], "followersAdded": added}


@router.delete("/contacts/{contactId}/followers")
async def remove_followers(ctx: CtxDep, contactId: str, body: Followers) -> dict[str, Any]:
    """Remove followers from a contact."""
    with ctx.state.lock:
        contact = require_contact(ctx, contactId)
        before = list(contact.get("followers", []))
        contact["followers"] = [f for f in before if f not in body.followers]
        removed = [f for f in body.followers if f in before]
        return {"followers": contact["followers"], "followersRemoved": removed}


@router.post("/contacts/{contactId}/campaigns/{campaignId}", status_code=201)
async def add_campaign(
    ctx: CtxDep,
    contactId: str,
    campaignId: str,
    body: dict[str, Any] | None = Body(None),  # noqa: B008 - AddContactToCampaignDto is empty
) -> dict[str, Any]:
    """Put a contact in a campaign."""
    del body
    with ctx.state.lock:
        contact = require_contact(ctx, contactId)
        contact["_campaigns"] = sorted({*contact.get("_campaigns", []), campaignId})
        return {"succeded": True}


@router.delete("/contacts/{contactId}/campaigns/removeAll")
async def remove_all_campaigns(ctx: CtxDep, contactId: str) -> dict[str, Any]:
    """Take a contact out of every campaign."""
    with ctx.state.lock:
        require_contact(ctx, contactId)["_campaigns"] = []
        return {"succeded": True}


@router.delete("/contacts/{contactId}/campaigns/{campaignId}")
async def remove_campaign(ctx: CtxDep, contactId: str, campaignId: str) -> dict[str, Any]:
    """Take a contact out of a campaign."""
    with ctx.state.lock:
        contact = require_contact(ctx, contactId)
        contact["_campaigns"] = [c for c in contact.get("_campaigns", []) if c != campaignId]
        return {"succeded": True}


@router.post("/contacts/{contactId}/workflow/{workflowId}")
async def add_workflow(
    ctx: CtxDep, contactId: str, workflowId: str, body: Workflow | None = None
) -> dict[str, Any]:
    """Enrol a contact in a workflow."""
    del body
    with ctx.state.lock:
        contact = require_contact(ctx, contactId)
        contact["_workflows"] = sorted({*contact.get("_workflows", []), workflowId})
        return {"succeded": True}


@router.delete("/contacts/{contactId}/workflow/{workflowId}")
async def remove_workflow(
    ctx: CtxDep, contactId: str, workflowId: str, body: Workflow | None = None
) -> dict[str, Any]:
    """Take a contact out of a workflow."""
    del body
    with ctx.state.lock:
        contact = require_contact(ctx, contactId)
        contact["_workflows"] = [w for w in contact.get("_workflows", []) if w != workflowId]
        return {"succeded": True}


@router.post("/contacts/bulk/tags/update/{type}", status_code=201)
async def bulk_tags(
    ctx: CtxDep,
    type: Literal["add", "remove"],
    body: BulkTags,
) -> dict[str, Any]:
    """Add or remove tags on many contacts; unknown ids are reported, not fatal."""
    location = ctx.check_location(body.locationId)
    responses: list[dict[str, Any]] = []
    with ctx.state.lock:
        for cid in body.contacts:
            contact = location.contacts.get(cid)
            if contact is None:
                responses.append(
                    {"contactId": cid, "message": "Contact not found", "type": "error"}
                )
                continue
            old = list(contact.get("tags", []))
            if type == "add":
                _contacts.add_tags(ctx.state, location, contact, body.tags)
            else:
                drop = old if body.removeAllTags else body.tags
                _contacts.remove_tags(ctx.state, location, contact, drop)
            new = contact["tags"]
            responses.append(
                {
                    "contactId": cid,
                    "message": "Tags updated",
                    "type": "success",
                    "oldTags": old,
                    "tagsAdded": [t for t in new if t not in old],
                    "tagsRemoved": [t for t in old if t not in new],
                }
            )
    errors = sum(1 for r in responses if r["type"] == "error")
    return {"succeded": errors == 0, "errorCount": errors, "responses": responses}


@router.post("/contacts/bulk/business")
async def bulk_business(ctx: CtxDep, body: BulkBusiness) -> dict[str, Any]:
    """Attach contacts to a business (`businessId: null` detaches them)."""
    location = ctx.check_location(body.locationId)
    with ctx.state.lock:
        done = []
        for cid in body.ids:
            contact = location.contacts.get(cid)
            if contact is not None:
                contact["businessId"] = body.businessId
                contact["dateUpdated"] = now_iso(ctx.state)
                done.append(cid)
        return {"success": True, "ids": done}
