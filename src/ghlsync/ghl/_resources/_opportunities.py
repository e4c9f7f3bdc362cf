"""`client.opportunities`: pipelines, opportunities (deal cards), their status and followers."""

from __future__ import annotations

import builtins
from typing import Any

from ghlsync.ghl._models import Ack, Opportunity, OpportunityUpsert, Pipeline
from ghlsync.ghl._resources._base import Resource, field, parse, parse_list, with_location


class Opportunities(Resource):
    """Opportunities of a location and the pipelines they move through."""

    async def pipelines(self, location_id: str) -> builtins.list[Pipeline]:
        """`GET /opportunities/pipelines?locationId=`: every pipeline with its stages."""
        params = {"locationId": location_id}
        answer = await self._call("get-pipelines", location_id, params=params)
        return parse_list(Pipeline, answer, "pipelines")

    async def get(self, location_id: str, opportunity_id: str) -> Opportunity:
        """`GET /opportunities/{id}`."""
        answer = await self._call("get-opportunity", location_id, path={"id": opportunity_id})
        return parse(Opportunity, answer, "opportunity")

    async def create(self, location_id: str, body: Any) -> Opportunity:
        """`POST /opportunities/` (not idempotent: a lost answer raises OutcomeUnknownError)."""
        body = with_location(body, location_id)
        answer = await self._call("create-opportunity", location_id, body=body)
        return parse(Opportunity, answer, "opportunity")

    async def update(self, location_id: str, opportunity_id: str, body: Any) -> Opportunity:
        """`PUT /opportunities/{id}`."""
        path = {"id": opportunity_id}
        answer = await self._call("update-opportunity", location_id, path=path, body=body)
        return parse(Opportunity, answer, "opportunity")

    async def upsert(self, location_id: str, body: Any) -> OpportunityUpsert:
        """`POST /opportunities/upsert`: one card per contact and pipeline (safe to repeat)."""
        body = with_location(body, location_id)
        answer = await self._call("Upsert-opportunity", location_id, body=body)
        return OpportunityUpsert.model_validate(answer)

    async def set_status(
        self, location_id: str, opportunity_id: str, status: str, lost_reason_id: str | None = None
    ) -> Ack:
        """`PUT /opportunities/{id}/status` (`open`, `won`, `lost`, `abandoned`)."""
        body: dict[str, Any] = {"status": status}
        if lost_reason_id is not None:
            body["lostReasonId"] = lost_reason_id
        path = {"id": opportunity_id}
        return await self._ack("update-opportunity-status", location_id, path=path, body=body)

    async def delete(self, location_id: str, opportunity_id: str) -> Ack:
        """`DELETE /opportunities/{id}`."""
        return await self._ack("delete-opportunity", location_id, path={"id": opportunity_id})

    async def search(self, location_id: str, **params: Any) -> Any:
        """`GET /opportunities/search?location_id=` with GHL's snake_case filters."""
        query = {"location_id": location_id, **params}
        return await self._call("search-opportunity", location_id, params=query)

    async def search_advanced(self, location_id: str, body: Any = None) -> Any:
        """`POST /opportunities/search` (filters in the body)."""
        body = with_location(body, location_id)
        return await self._call("search-opportunities-advanced", location_id, body=body)

    async def lost_reasons(self, location_id: str, **params: Any) -> builtins.list[Any]:
        """`GET /opportunities/lost-reason?locationId=`."""
        query = {"locationId": location_id, **params}
        answer = await self._call("get-lost-reason", location_id, params=query)
        return builtins.list(field(answer, "lostReasons") or [])

    async def add_followers(
        self, location_id: str, opportunity_id: str, followers: builtins.list[str]
    ) -> Any:
        """`POST /opportunities/{id}/followers`."""
        path, body = {"id": opportunity_id}, {"followers": followers}
        return await self._call("add-followers-opportunity", location_id, path=path, body=body)

    async def remove_followers(
        self, location_id: str, opportunity_id: str, followers: builtins.list[str]
    ) -> Any:
        """`DELETE /opportunities/{id}/followers`."""
        path, body = {"id": opportunity_id}, {"followers": followers}
        return await self._call("remove-followers-opportunity", location_id, path=path, body=body)
