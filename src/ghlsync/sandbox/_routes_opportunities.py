"""`/opportunities/...`: create, get, update, upsert, status, delete and followers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ghlsync.sandbox import _opportunity_store as store
from ghlsync.sandbox._deps import CtxDep
from ghlsync.sandbox._errors import unprocessable
from ghlsync.sandbox._models import Followers
from ghlsync.sandbox._opportunity_models import (
    CreateOpportunity,
    UpdateOpportunity,
    UpdateStatus,
    UpsertOpportunity,
)
from ghlsync.sandbox._state import Record

router = APIRouter()


@router.post("/opportunities/", status_code=201)
async def create_opportunity(ctx: CtxDep, body: CreateOpportunity) -> dict[str, Any]:
    """Create an opportunity (400 when the contact already has one in the pipeline)."""
    with ctx.state.lock:
        fields = body.given()
        ctx.check_location(fields.pop("locationId"))
        record = store.create(ctx, fields.pop("contactId"), fields)
        return {"opportunity": store.answer(ctx, record)}


@router.post("/opportunities/upsert")
async def upsert_opportunity(ctx: CtxDep, body: UpsertOpportunity) -> dict[str, Any]:
    """Update the opportunity `id`, or the contact's one in the pipeline; else create it."""
    with ctx.state.lock:
        fields = body.given()
        ctx.check_location(fields.pop("locationId"))
        for key in ("followers", "isRemoveAllFollowers", "followersActionType"):
            fields.pop(key, None)  # followers have their own routes; kept out of the record
        opportunity_id, contact_id = fields.pop("id", None), fields.pop("contactId", None)
        record: Record | None
        if opportunity_id:
            record = store.opportunity_of(ctx, opportunity_id)
        elif contact_id:
            record = store.find(ctx, contact_id, fields["pipelineId"])
        else:
            raise unprocessable("contactId or id should not be empty")
        if record is not None:
            return {
                "opportunity": store.answer(ctx, store.change(ctx, record, fields)),
                "new": False,
            }
        record = store.create(ctx, str(contact_id), fields)
        return {"opportunity": store.answer(ctx, record), "new": True}


@router.get("/opportunities/{id}")
async def get_opportunity(ctx: CtxDep, id: str) -> dict[str, Any]:
    """One opportunity."""
    with ctx.state.lock:
        return {"opportunity": store.answer(ctx, store.opportunity_of(ctx, id))}


@router.put("/opportunities/{id}")
async def update_opportunity(ctx: CtxDep, id: str, body: UpdateOpportunity) -> dict[str, Any]:
    """Change fields; a stage, status, value or owner change sends its own event."""
    with ctx.state.lock:
        record = store.change(ctx, store.opportunity_of(ctx, id), body.given())
        return {"opportunity": store.answer(ctx, record)}


@router.put("/opportunities/{id}/status")
async def update_status(ctx: CtxDep, id: str, body: UpdateStatus) -> dict[str, Any]:
    """Set the status (`won`, `lost`, ...), optionally with a lost reason."""
    with ctx.state.lock:
        store.change(ctx, store.opportunity_of(ctx, id), body.given())
        return {"succeded": True}


@router.delete("/opportunities/{id}")
async def delete_opportunity(ctx: CtxDep, id: str) -> dict[str, Any]:
    """Delete an opportunity."""
    with ctx.state.lock:
        record = store.opportunity_of(ctx, id)
        del ctx.location.opportunities[id]
        store.event(ctx, "OpportunityDelete", record)
        return {"succeded": True}


@router.post("/opportunities/{id}/followers", status_code=201)
async def add_followers(ctx: CtxDep, id: str, body: Followers) -> dict[str, Any]:
    """Add followers (user ids); answers every follower and the ones new here."""
    with ctx.state.lock:
        record = store.opportunity_of(ctx, id)
        current: list[str] = record["_followers"]
        added = [f for f in dict.fromkeys(body.followers) if f not in current]
        current.extend(added)
        return {"followers": list(current), "followersAdded": added}


@router.delete("/opportunities/{id}/followers")
async def remove_followers(
    ctx: CtxDep,
    id: str,
    body: Followers,
    isRemoveAllFollowers: bool = False,
) -> dict[str, Any]:
    """Remove followers (or all of them with `isRemoveAllFollowers=true`)."""
    with ctx.state.lock:
        record = store.opportunity_of(ctx, id)
        current: list[str] = record["_followers"]
        gone = (
            list(current) if isRemoveAllFollowers else [f for f in current if f in body.followers]
        )
        record["_followers"] = [f for f in current if f not in gone]
        return {"followers": record["_followers"], "followersRemoved": gone}
