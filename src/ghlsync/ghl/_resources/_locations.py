"""`client.locations`: the location itself, its custom fields, tags and task search."""

from __future__ import annotations

from typing import Any

from ghlsync.ghl._models import CustomField, Tag
from ghlsync.ghl._resources._base import Resource, field, parse, parse_list


class Locations(Resource):
    """Location-level settings the sync needs."""

    async def get(self, location_id: str) -> Any:
        """`GET /locations/{locationId}`."""
        answer = await self._call("get-location", location_id, path={"locationId": location_id})
        return field(answer, "location")

    async def custom_fields(
        self, location_id: str, *, model: str | None = None
    ) -> list[CustomField]:
        """`GET /locations/{locationId}/customFields` (model: contact, opportunity or all)."""
        answer = await self._call(
            "get-custom-fields",
            location_id,
            path={"locationId": location_id},
            params={"model": model},
        )
        return parse_list(CustomField, answer, "customFields")

    async def get_custom_field(self, location_id: str, field_id: str) -> CustomField:
        """`GET /locations/{locationId}/customFields/{id}`."""
        path = {"locationId": location_id, "id": field_id}
        return parse(
            CustomField, await self._call("get-custom-field", location_id, path=path), "customField"
        )

    async def create_custom_field(self, location_id: str, body: Any) -> CustomField:
        """`POST /locations/{locationId}/customFields`."""
        path = {"locationId": location_id}
        answer = await self._call("create-custom-field", location_id, path=path, body=body)
        return parse(CustomField, answer, "customField")

    async def tags(self, location_id: str) -> list[Tag]:
        """`GET /locations/{locationId}/tags`."""
        answer = await self._call(
            "get-location-tags", location_id, path={"locationId": location_id}
        )
        return parse_list(Tag, answer, "tags")

    async def create_tag(self, location_id: str, name: str) -> Tag:
        """`POST /locations/{locationId}/tags`."""
        path = {"locationId": location_id}
        answer = await self._call("create-tag", location_id, path=path, body={"name": name})
        return parse(Tag, answer, "tag")

    async def search_tasks(self, location_id: str, body: Any = None) -> Any:
        """`POST /locations/{locationId}/tasks/search`."""
        path = {"locationId": location_id}
        return await self._call("task-search", location_id, path=path, body=body or {})
