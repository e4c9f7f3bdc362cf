"""`client.businesses`: the businesses (companies) contacts of a location belong to."""

from __future__ import annotations

import builtins
from typing import Any

from ghlsync.ghl._models import Ack
from ghlsync.ghl._resources._base import Resource, field, with_location


class Businesses(Resource):
    """Businesses (companies contacts belong to) of a location."""

    async def list(self, location_id: str) -> builtins.list[dict[str, Any]]:
        """`GET /businesses/?locationId=`."""
        answer = await self._call(
            "get-businesses-by-location", location_id, params={"locationId": location_id}
        )
        return builtins.list(field(answer, "businesses") or [])

    async def get(self, location_id: str, business_id: str) -> Any:
        """`GET /businesses/{businessId}`."""
        answer = await self._call("get-business", location_id, path={"businessId": business_id})
        return field(answer, "business")

    async def create(self, location_id: str, body: Any) -> Any:
        """`POST /businesses/`."""
        answer = await self._call(
            "create-business", location_id, body=with_location(body, location_id)
        )
        return field(answer, "business")

    async def update(self, location_id: str, business_id: str, body: Any) -> Any:
        """`PUT /businesses/{businessId}`."""
        path = {"businessId": business_id}
        answer = await self._call("update-business", location_id, path=path, body=body)
        return field(answer, "business")

    async def delete(self, location_id: str, business_id: str) -> Ack:
        """`DELETE /businesses/{businessId}`."""
        return await self._ack("delete-Business", location_id, path={"businessId": business_id})
