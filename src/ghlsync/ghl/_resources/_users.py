"""`client.users`: the users (team members) of a location."""

from __future__ import annotations

import builtins
from typing import Any

from ghlsync.ghl._resources._base import Resource, field


class Users(Resource):
    """Users (team members) of a location."""

    async def list(self, location_id: str) -> builtins.list[dict[str, Any]]:
        """`GET /users/?locationId=` (deprecated by GHL, still the simple way per location)."""
        answer = await self._call(
            "get-user-by-location", location_id, params={"locationId": location_id}
        )
        return builtins.list(field(answer, "users") or [])

    async def get(self, location_id: str, user_id: str) -> Any:
        """`GET /users/{userId}`."""
        return await self._call("get-user", location_id, path={"userId": user_id})
