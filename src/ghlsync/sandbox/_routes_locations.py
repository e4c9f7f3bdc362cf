"""Location-level resources: the location, custom fields, tags, task search, users, businesses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ghlsync.sandbox._deps import CtxDep
from ghlsync.sandbox._errors import SandboxError
from ghlsync.sandbox._models import Body, CreateCustomField, SearchTasks, TagBody, optional
from ghlsync.sandbox._records import get_or_404, now_iso, public

router = APIRouter()


@router.get("/locations/{locationId}")
async def get_location(ctx: CtxDep, locationId: str) -> dict[str, Any]:
    """The location itself."""
    location = ctx.check_location(locationId)
    return {
        "location": {
            "id": location.id,
            "companyId": location.company_id,
            "name": location.name,
            "timezone": "UTC",
            "settings": {"allowDuplicateContact": location.allow_duplicate_contact},
        }
    }


@router.get("/locations/{locationId}/customFields")
async def list_custom_fields(ctx: CtxDep, locationId: str, model: str = "all") -> dict[str, Any]:
    """The location's custom field definitions."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        fields = [
            public(f)
            for f in location.custom_fields.values()
            if model == "all" or f.get("model") == model
        ]
        return {"customFields": fields}


@router.post("/locations/{locationId}/customFields", status_code=201)
async def create_custom_field(
    ctx: CtxDep, locationId: str, body: CreateCustomField
) -> dict[str, Any]:
    """Define a custom field; its `fieldKey` is `<model>.<snake_case name>`."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        given = body.given()
        model = given.pop("model", None) or "contact"
        key = "_".join(body.name.lower().split())
        field = {
            "id": ctx.state.new_id(),
            "locationId": location.id,
            "model": model,
            "fieldKey": f"{model}.{key}",
            "position": len(location.custom_fields),
            **given,
        }
        location.custom_fields[field["id"]] = field
        return {"customField": public(field)}


@router.get("/locations/{locationId}/customFields/{id}")
async def get_custom_field(ctx: CtxDep, locationId: str, id: str) -> dict[str, Any]:
    """One custom field definition."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return {"customField": public(get_or_404(location.custom_fields, id, "Custom field"))}


@router.get("/locations/{locationId}/tags")
async def list_tags(ctx: CtxDep, locationId: str) -> dict[str, Any]:
    """The location's tag catalogue, including every tag on a contact."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        names = {t["name"] for t in location.tags.values()}
        for contact in location.contacts.values():
            for tag in contact.get("tags", []):
                if tag not in names:
                    names.add(tag)
                    tag_id = ctx.state.new_id()
                    location.tags[tag_id] = {"id": tag_id, "name": tag, "locationId": location.id}
        return {"tags": [public(t) for t in location.tags.values()]}


@router.post("/locations/{locationId}/tags")
async def create_tag(ctx: CtxDep, locationId: str, body: TagBody) -> dict[str, Any]:
    """Add a tag to the catalogue."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        tag = {"id": ctx.state.new_id(), "name": body.name, "locationId": location.id}
        location.tags[tag["id"]] = tag
        return {"tag": tag}


@router.get("/locations/{locationId}/tags/{tagId}")
async def get_tag(ctx: CtxDep, locationId: str, tagId: str) -> dict[str, Any]:
    """One catalogue tag."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return {"tag": public(get_or_404(location.tags, tagId, "Tag"))}


@router.post("/locations/{locationId}/tasks/search")
async def search_tasks(ctx: CtxDep, locationId: str, body: SearchTasks) -> dict[str, Any]:
    """Tasks of the whole location, filtered, newest due date last, paged by skip/limit."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        tasks = [t for t in location.tasks.values() if _task_matches(t, body)]
        tasks.sort(key=lambda t: (str(t.get("dueDate", "")), t["id"]))
        skip, limit = max(0, int(body.skip or 0)), max(0, int(body.limit or 25))
        return {"tasks": [public(t) for t in tasks[skip : skip + limit]]}


def _task_matches(task: dict[str, Any], body: SearchTasks) -> bool:
    if body.contactId and task.get("contactId") not in body.contactId:
        return False
    if body.completed is not None and bool(task.get("completed")) != body.completed:
        return False
    if body.assignedTo and task.get("assignedTo") not in body.assignedTo:
        return False
    text = (body.query or "").lower()
    return not text or text in f"{task.get('title', '')} {task.get('body', '')}".lower()


@router.get("/users/")
@router.get("/users", include_in_schema=False)
async def list_users(ctx: CtxDep, locationId: str) -> dict[str, Any]:
    """The location's users."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return {"users": [public(u) for u in location.users.values()]}


@router.get("/users/search")
async def search_users(
    ctx: CtxDep, companyId: str, locationId: str | None = None, query: str = ""
) -> dict[str, Any]:
    """Users of the caller's location matching a query (`companyId` is required by the spec)."""
    if companyId != ctx.principal.company_id:
        raise SandboxError(403, "The token does not have access to this company.")
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        users = [public(u) for u in location.users.values() if query.lower() in u["name"].lower()]
        return {"users": users, "count": len(users)}


@router.get("/users/{userId}")
async def get_user(ctx: CtxDep, userId: str) -> dict[str, Any]:
    """One user (the body is the user itself)."""
    with ctx.state.lock:
        return public(get_or_404(ctx.location.users, userId, "User"))


class _BusinessFields(Body):
    # None of these is `nullable` in the spec: `{"name": null}` answers 422, never erases.
    name: str = optional()
    phone: str = optional()
    email: str = optional()
    website: str = optional()
    address: str = optional()
    city: str = optional()
    postalCode: str = optional()
    state: str = optional()
    country: str = optional()
    description: str = optional()


class CreateBusiness(_BusinessFields):
    """`CreateBusinessDto`."""

    name: str
    locationId: str


@router.get("/businesses/")
@router.get("/businesses", include_in_schema=False)
async def list_businesses(ctx: CtxDep, locationId: str) -> dict[str, Any]:
    """The location's businesses."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return {"businesses": [public(b) for b in location.businesses.values()]}


@router.post("/businesses/", status_code=201)
@router.post("/businesses", status_code=201, include_in_schema=False)
async def create_business(ctx: CtxDep, body: CreateBusiness) -> dict[str, Any]:
    """Create a business."""
    location = ctx.check_location(body.locationId)
    with ctx.state.lock:
        now = now_iso(ctx.state)
        business = {"id": ctx.state.new_id(24), **body.given(), "createdAt": now, "updatedAt": now}
        location.businesses[business["id"]] = business
        return {"success": True, "buiseness": public(business)}


@router.get("/businesses/{businessId}")
async def get_business(ctx: CtxDep, businessId: str) -> dict[str, Any]:
    """One business."""
    with ctx.state.lock:
        return {"business": public(get_or_404(ctx.location.businesses, businessId, "Business"))}


@router.put("/businesses/{businessId}")
async def update_business(ctx: CtxDep, businessId: str, body: _BusinessFields) -> dict[str, Any]:
    """Change a business."""
    with ctx.state.lock:
        business = get_or_404(ctx.location.businesses, businessId, "Business")
        business.update(body.given())
        business["updatedAt"] = now_iso(ctx.state)
        return {"success": True, "buiseness": public(business)}


@router.delete("/businesses/{businessId}")
async def delete_business(ctx: CtxDep, businessId: str) -> dict[str, Any]:
    """Delete a business."""
    with ctx.state.lock:
        get_or_404(ctx.location.businesses, businessId, "Business")
        del ctx.location.businesses[businessId]
        return {"success": True}
