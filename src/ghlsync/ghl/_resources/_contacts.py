"""`client.contacts`: every contacts operation except tasks and notes."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

from ghlsync.ghl._models import Ack, Contact, ContactPage, SearchPage, UpsertResult
from ghlsync.ghl._resources._base import Resource, field, parse, with_location


class Contacts(Resource):
    """Contacts of one location (the first argument of every method)."""

    async def get(self, location_id: str, contact_id: str) -> Contact:
        """`GET /contacts/{contactId}`."""
        answer = await self._call("get-contact", location_id, path={"contactId": contact_id})
        return parse(Contact, answer, "contact")

    async def create(self, location_id: str, body: Any) -> Contact:
        """`POST /contacts/` (not idempotent: a lost answer raises OutcomeUnknownError)."""
        answer = await self._call(
            "create-contact", location_id, body=with_location(body, location_id)
        )
        return parse(Contact, answer, "contact")

    async def update(self, location_id: str, contact_id: str, body: Any) -> Contact:
        """`PUT /contacts/{contactId}` (a `tags` field replaces all tags)."""
        answer = await self._call(
            "update-contact", location_id, path={"contactId": contact_id}, body=body
        )
        return parse(Contact, answer, "contact")

    async def delete(self, location_id: str, contact_id: str) -> Ack:
        """`DELETE /contacts/{contactId}` (404 raises NotFoundError, a SkippableError)."""
        return await self._ack("delete-contact", location_id, path={"contactId": contact_id})

    async def upsert(self, location_id: str, body: Any) -> UpsertResult:
        """`POST /contacts/upsert`: the contact, and `new` when GHL created it."""
        answer = await self._call(
            "upsert-contact", location_id, body=with_location(body, location_id)
        )
        return UpsertResult.model_validate(answer)

    async def list_page(
        self,
        location_id: str,
        *,
        limit: int = 100,
        query: str | None = None,
        start_after: int | float | None = None,
        start_after_id: str | None = None,
    ) -> ContactPage:
        """One page of the deprecated `GET /contacts/`; every page repeats locationId and limit."""
        params = {
            "locationId": location_id,
            "limit": limit,
            "query": query,
            "startAfter": start_after,
            "startAfterId": start_after_id,
        }
        return ContactPage.model_validate(
            await self._call("get-contacts", location_id, params=params)
        )

    async def list(
        self, location_id: str, *, limit: int = 100, query: str | None = None
    ) -> AsyncIterator[Contact]:
        """Every contact via `GET /contacts/`, following `meta.startAfter`/`startAfterId`."""
        after: int | float | None = None
        after_id: str | None = None
        while True:
            page = await self.list_page(
                location_id, limit=limit, query=query, start_after=after, start_after_id=after_id
            )
            for contact in page.contacts:
                yield contact
            next_after, next_id = page.meta.get("startAfter"), page.meta.get("startAfterId")
            # Stop on a short page or a cursor that does not move (guards against looping).
            if (
                len(page.contacts) < limit
                or not next_id
                or (next_after, next_id) == (after, after_id)
            ):
                return
            after, after_id = next_after, next_id

    async def search_page(self, location_id: str, body: Any) -> SearchPage:
        """One page of `POST /contacts/search`."""
        answer = await self._call(
            "search-contacts-advanced", location_id, body=with_location(body, location_id)
        )
        return SearchPage.model_validate(answer)

    async def search(
        self, location_id: str, body: Mapping[str, Any] | None = None, *, page_limit: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every match of `POST /contacts/search`, paging by the last record's `searchAfter`."""
        request = {"pageLimit": page_limit, **(body or {})}
        while True:
            page = await self.search_page(location_id, request)
            for contact in page.contacts:
                yield contact
            cursor = page.contacts[-1].get("searchAfter") if page.contacts else None
            if len(page.contacts) < int(request["pageLimit"]) or not cursor:
                return
            request = {**request, "searchAfter": cursor}
            request.pop("page", None)

    async def find_duplicate(
        self, location_id: str, *, email: str | None = None, number: str | None = None
    ) -> Contact | None:
        """`GET /contacts/search/duplicate`: the contact matching email or phone, if any."""
        params = {"locationId": location_id, "email": email, "number": number}
        answer = await self._call("get-duplicate-contact", location_id, params=params)
        found = field(answer, "contact")
        return Contact.model_validate(found) if found else None

    async def by_business(self, location_id: str, business_id: str, **params: Any) -> Any:
        """`GET /contacts/business/{businessId}` (params: limit, skip, query)."""
        return await self._call(
            "get-contacts-by-businessId",
            location_id,
            path={"businessId": business_id},
            params={"locationId": location_id, **params},
        )

    async def add_tags(
        self, location_id: str, contact_id: str, tags: Sequence[str]
    ) -> builtins.list[str]:
        """`POST /contacts/{contactId}/tags`: adds to the contact's tags; returns them."""
        answer = await self._call(
            "add-tags", location_id, path={"contactId": contact_id}, body={"tags": list(tags)}
        )
        return list(field(answer, "tags") or [])

    async def remove_tags(
        self, location_id: str, contact_id: str, tags: Sequence[str]
    ) -> builtins.list[str]:
        """`DELETE /contacts/{contactId}/tags`; returns the tags left."""
        answer = await self._call(
            "remove-tags", location_id, path={"contactId": contact_id}, body={"tags": list(tags)}
        )
        return list(field(answer, "tags") or [])

    async def appointments(
        self, location_id: str, contact_id: str
    ) -> builtins.list[dict[str, Any]]:
        """`GET /contacts/{contactId}/appointments`."""
        answer = await self._call(
            "get-appointments-for-contact", location_id, path={"contactId": contact_id}
        )
        return list(field(answer, "events") or [])

    async def add_followers(
        self, location_id: str, contact_id: str, followers: Sequence[str]
    ) -> Any:
        """`POST /contacts/{contactId}/followers`."""
        body = {"followers": list(followers)}
        path = {"contactId": contact_id}
        return await self._call("add-followers-contact", location_id, path=path, body=body)

    async def remove_followers(
        self, location_id: str, contact_id: str, followers: Sequence[str]
    ) -> Any:
        """`DELETE /contacts/{contactId}/followers`."""
        body = {"followers": list(followers)}
        path = {"contactId": contact_id}
        return await self._call("remove-followers-contact", location_id, path=path, body=body)

    async def add_to_campaign(self, location_id: str, contact_id: str, campaign_id: str) -> Ack:
        """`POST /contacts/{contactId}/campaigns/{campaignId}`."""
        path = {"contactId": contact_id, "campaignId": campaign_id}
        return await self._ack("add-contact-to-campaign", location_id, path=path, body={})

    async def remove_from_campaign(
        self, location_id: str, contact_id: str, campaign_id: str
    ) -> Ack:
        """`DELETE /contacts/{contactId}/campaigns/{campaignId}`."""
        path = {"contactId": contact_id, "campaignId": campaign_id}
        return await self._ack("remove-contact-from-campaign", location_id, path=path)

    async def remove_from_all_campaigns(self, location_id: str, contact_id: str) -> Ack:
        """`DELETE /contacts/{contactId}/campaigns/removeAll`."""
        path = {"contactId": contact_id}
        return await self._ack("remove-contact-from-every-campaign", location_id, path=path)

    async def add_to_workflow(
        self,
        location_id: str,
        contact_id: str,
        workflow_id: str,
        event_start_time: str | None = None,
    ) -> Ack:
        """`POST /contacts/{contactId}/workflow/{workflowId}`."""
        path = {"contactId": contact_id, "workflowId": workflow_id}
        body = _workflow_body(event_start_time)
        return await self._ack("add-contact-to-workflow", location_id, path=path, body=body)

    async def remove_from_workflow(
        self,
        location_id: str,
        contact_id: str,
        workflow_id: str,
        event_start_time: str | None = None,
    ) -> Ack:
        """`DELETE /contacts/{contactId}/workflow/{workflowId}`."""
        path = {"contactId": contact_id, "workflowId": workflow_id}
        body = _workflow_body(event_start_time)
        return await self._ack("delete-contact-from-workflow", location_id, path=path, body=body)

    async def bulk_tags(
        self,
        location_id: str,
        kind: Literal["add", "remove"],
        contact_ids: Sequence[str],
        tags: Sequence[str],
        remove_all_tags: bool | None = None,
    ) -> Any:
        """`POST /contacts/bulk/tags/update/{type}` for many contacts at once."""
        body: dict[str, Any] = {"contacts": list(contact_ids), "tags": list(tags)}
        if remove_all_tags is not None:
            body["removeAllTags"] = remove_all_tags
        return await self._call(
            "create-association",
            location_id,
            path={"type": kind},
            body=with_location(body, location_id),
        )

    async def bulk_business(
        self, location_id: str, contact_ids: Sequence[str], business_id: str | None
    ) -> Any:
        """`POST /contacts/bulk/business`: attach contacts to a business (None detaches)."""
        body = {"ids": list(contact_ids), "businessId": business_id}
        return await self._call(
            "add-remove-contact-from-business", location_id, body=with_location(body, location_id)
        )


def _workflow_body(event_start_time: str | None) -> dict[str, Any]:
    return {"eventStartTime": event_start_time} if event_start_time else {}
