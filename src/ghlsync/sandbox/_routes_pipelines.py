"""`/opportunities/pipelines`, lost reasons, opportunity search, `/workflows/`, `/campaigns/`.

Registered before `_routes_opportunities`, so `/opportunities/search` and friends are not taken
for `/opportunities/{id}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from ghlsync.sandbox import _opportunity_store as store
from ghlsync.sandbox._deps import Ctx, CtxDep
from ghlsync.sandbox._opportunity_models import SearchBody, Status
from ghlsync.sandbox._records import public
from ghlsync.sandbox._state import Record

router = APIRouter()


@router.get("/opportunities/pipelines")
async def pipelines(ctx: CtxDep, locationId: str) -> dict[str, Any]:
    """Every pipeline of the location with its stages in order."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return {"pipelines": [public(p) for p in location.pipelines.values()]}


@router.get("/opportunities/lost-reason")
async def lost_reasons(
    ctx: CtxDep,
    locationId: str,
    name: str | None = None,
    query: str | None = None,
    skip: float = Query(0, ge=0, allow_inf_nan=False),
    limit: float = Query(100, ge=0, allow_inf_nan=False),
    deleted: bool = False,
    getCount: bool = False,
) -> dict[str, Any]:
    """The location's lost reasons, filtered by name or text."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        text = (name or query or "").lower()
        found = [r for r in location.lost_reasons.values() if text in r["name"].lower()]
        page = found[int(skip) : int(skip) + int(limit)]
        return {"lostReasons": [public(r) for r in page], "total": len(found)}


@router.get("/opportunities/search")
async def search_get(
    ctx: CtxDep,
    location_id: str,
    q: str | None = None,
    pipeline_id: str | None = None,
    pipeline_stage_id: str | None = None,
    contact_id: str | None = None,
    status: Status | None = None,
    assigned_to: str | None = None,
    id: str | None = None,
    page: float = Query(1, ge=1, allow_inf_nan=False),
    limit: float = Query(20, ge=1, le=100, allow_inf_nan=False),
) -> dict[str, Any]:
    """Opportunities matching every filter given, oldest first, by page."""
    ctx.check_location(location_id)
    filters = {
        "pipelineId": pipeline_id,
        "pipelineStageId": pipeline_stage_id,
        "contactId": contact_id,
        "assignedTo": assigned_to,
        "id": id,
        "status": None if status == "all" else status,
    }
    with ctx.state.lock:
        found = _matching(ctx, q, {k: v for k, v in filters.items() if v is not None})
        first, size = (int(page) - 1) * int(limit), int(limit)
        shown = [store.answer(ctx, r) for r in found[first : first + size]]
        meta: dict[str, Any] = {"total": len(found), "currentPage": int(page)}
        if first + size < len(found):
            meta["nextPage"] = int(page) + 1
        if page > 1:
            meta["prevPage"] = int(page) - 1
        return {"opportunities": shown, "meta": meta, "aggregations": {}}


@router.post("/opportunities/search")
async def search_post(ctx: CtxDep, body: SearchBody) -> dict[str, Any]:
    """`query` over names and contacts, by page (`limit` 20 by default)."""
    ctx.check_location(body.locationId)
    size = max(1, min(int(body.limit or 20), 100))
    first = (max(1, int(body.page or 1)) - 1) * size
    with ctx.state.lock:
        found = _matching(ctx, body.query, {})
        shown = [store.answer(ctx, r) for r in found[first : first + size]]
        return {"opportunities": shown, "total": len(found), "aggregations": {}}


def _matching(ctx: Ctx, text: str | None, filters: dict[str, str]) -> list[Record]:
    needle = (text or "").lower()
    found = []
    for record in ctx.location.opportunities.values():
        if any(record.get(k) != v for k, v in filters.items()):
            continue
        contact = ctx.location.contacts.get(record.get("contactId") or "") or {}
        words = (record.get("name"), contact.get("name"), contact.get("email"))
        if needle and not any(needle in str(w or "").lower() for w in words):
            continue
        found.append(record)
    return found


@router.get("/workflows/")
async def workflows(ctx: CtxDep, locationId: str) -> dict[str, Any]:
    """The location's workflows (a contact is enrolled with `/contacts/{id}/workflow/{id}`)."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return {"workflows": [public(w) for w in location.workflows.values()]}


@router.get("/campaigns/")
async def campaigns(ctx: CtxDep, locationId: str, status: str | None = None) -> dict[str, Any]:
    """The location's campaigns, optionally only those with `status`."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        found = [c for c in location.campaigns.values() if status in (None, c.get("status"))]
        return {"campaigns": [public(c) for c in found]}
