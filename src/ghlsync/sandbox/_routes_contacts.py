"""`/contacts/*`: contacts, upsert, duplicate search, search, listing and tags."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from ghlsync.sandbox import _contacts, _search
from ghlsync.sandbox._contact_models import CreateContact, UpdateContact, UpsertContact
from ghlsync.sandbox._deps import CtxDep
from ghlsync.sandbox._errors import SandboxError
from ghlsync.sandbox._models import SearchContacts, Tags
from ghlsync.sandbox._records import get_or_404, number_string, public

router = APIRouter()


@router.get("/contacts/search/duplicate")
async def duplicate(
    ctx: CtxDep,
    locationId: str,
    number: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """The contact that counts as a duplicate of this email/phone, or `contact: null`."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        # A number that is no possible phone (the spec's own example, +1423164516, is one
        # digit short) matches nobody: the answer is `contact: null`, not a 422.
        phone = _contacts.phone_key(number) if number else None
        match = _contacts.find_duplicate(location, email, phone)
        return {"contact": public(match[0]) if match else None}


@router.post("/contacts/search")
async def search(ctx: CtxDep, body: SearchContacts) -> dict[str, Any]:
    """Advanced search with page or searchAfter pagination."""
    location = ctx.check_location(body.locationId)
    with ctx.state.lock:
        return _search.search(location, body)


@router.post("/contacts/upsert")
async def upsert(ctx: CtxDep, body: UpsertContact) -> dict[str, Any]:
    """Create or update by the location's duplicate rule; `new` says which."""
    location = ctx.check_location(body.locationId)
    with ctx.state.lock:
        contact, created = _contacts.upsert(ctx.state, location, body.given())
        return {"new": created, "contact": public(contact), "traceId": ctx.state.new_id(24)}


@router.post("/contacts/", status_code=201)
@router.post("/contacts", status_code=201, include_in_schema=False)
async def create(ctx: CtxDep, body: CreateContact) -> dict[str, Any]:
    """Create a contact (400 on a duplicate when the location forbids duplicates)."""
    location = ctx.check_location(body.locationId)
    with ctx.state.lock:
        return {"contact": public(_contacts.create(ctx.state, location, body.given()))}


@router.get("/contacts/")
@router.get("/contacts", include_in_schema=False)
async def list_contacts(
    ctx: CtxDep,
    locationId: str,
    startAfterId: str | None = None,
    startAfter: float | None = Query(None, allow_inf_nan=False),  # `type: number` in the spec
    query: str | None = None,
    limit: float = Query(20, ge=1, le=100, allow_inf_nan=False),
) -> dict[str, Any]:
    """The deprecated listing, oldest first, paged by `startAfter` + `startAfterId`."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return _search.list_page(location, startAfter, startAfterId, query, int(limit))


@router.get("/contacts/business/{businessId}")
async def by_business(
    ctx: CtxDep,
    businessId: str,
    locationId: str,
    limit: str = "25",
    skip: str = "0",
    query: str | None = None,
) -> dict[str, Any]:
    """Contacts attached to a business (`limit` and `skip` are number strings in the spec)."""
    location = ctx.check_location(locationId)
    first, count = number_string("skip", skip), number_string("limit", limit)
    with ctx.state.lock:
        found = [
            c
            for c in location.contacts.values()
            if c.get("businessId") == businessId and (not query or _search.has_text(c, query))
        ]
        page = found[first : first + count]
        return {"contacts": [_search.search_view(c) for c in page], "count": len(found)}


@router.get("/contacts/{contactId}")
async def get_contact(ctx: CtxDep, contactId: str) -> dict[str, Any]:
    """One contact."""
    with ctx.state.lock:
        return {"contact": public(get_or_404(ctx.location.contacts, contactId, "Contact"))}


@router.put("/contacts/{contactId}")
async def update_contact(ctx: CtxDep, contactId: str, body: UpdateContact) -> dict[str, Any]:
    """Update a contact; `tags` overwrite all tags."""
    with ctx.state.lock:
        contact = get_or_404(ctx.location.contacts, contactId, "Contact")
        _contacts.update(ctx.state, ctx.location, contact, body.given())
        return {"succeded": True, "contact": public(contact)}


@router.delete("/contacts/{contactId}")
async def delete_contact(ctx: CtxDep, contactId: str) -> dict[str, Any]:
    """Delete a contact."""
    with ctx.state.lock:
        contact = get_or_404(ctx.location.contacts, contactId, "Contact")
        _contacts.delete(ctx.state, ctx.location, contact)
        return {"succeded": True}


@router.post("/contacts/{contactId}/tags", status_code=201)
async def add_tags(ctx: CtxDep, contactId: str, body: Tags) -> dict[str, Any]:
    """Add tags to a contact."""
    with ctx.state.lock:
        contact = get_or_404(ctx.location.contacts, contactId, "Contact")
        return {"tags": _contacts.add_tags(ctx.state, ctx.location, contact, body.tags)}


@router.delete("/contacts/{contactId}/tags")
async def remove_tags(ctx: CtxDep, contactId: str, body: Tags) -> dict[str, Any]:
    """Remove tags from a contact."""
    with ctx.state.lock:
        contact = get_or_404(ctx.location.contacts, contactId, "Contact")
        return {"tags": _contacts.remove_tags(ctx.state, ctx.location, contact, body.tags)}


def require_contact(ctx: CtxDep, contact_id: str) -> dict[str, Any]:
    """The contact or a 404 (for routes hanging off a contact)."""
    contact = ctx.location.contacts.get(contact_id)
    if contact is None:
        raise SandboxError(404, "Contact not found")
    return contact
