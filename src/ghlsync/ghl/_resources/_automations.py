"""`client.workflows` and `client.campaigns`: the automations a contact can be enrolled in."""

from __future__ import annotations

import builtins
from typing import Any

from ghlsync.ghl._resources._base import Resource, field


class Workflows(Resource):
    """Workflows of a location (enrolment is `contacts.add_to_workflow`)."""

    async def list(self, location_id: str) -> builtins.list[dict[str, Any]]:
        """`GET /workflows/?locationId=`: id, name, status of each workflow."""
        answer = await self._call("get-workflow", location_id, params={"locationId": location_id})
        return builtins.list(field(answer, "workflows") or [])


class Campaigns(Resource):
    """Campaigns of a location (enrolment is `contacts.add_to_campaign`)."""

    async def list(
        self, location_id: str, status: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """`GET /campaigns/?locationId=` (optionally only `status`, e.g. `published`)."""
        params = {"locationId": location_id, "status": status}
        answer = await self._call("get-campaigns", location_id, params=params)
        return builtins.list(field(answer, "campaigns") or [])
