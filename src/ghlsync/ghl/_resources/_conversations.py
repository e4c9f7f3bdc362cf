"""`client.conversations`: send a message to a contact."""

from __future__ import annotations

from typing import Any

from ghlsync.ghl._resources._base import Resource


class Conversations(Resource):
    """Messages of a location's conversations (SMS, Email, ...)."""

    async def send(self, location_id: str, body: Any) -> dict[str, Any]:
        """`POST /conversations/messages`: conversationId, messageId, status (not idempotent)."""
        answer = await self._call("send-a-new-message", location_id, body=body)
        return dict(answer or {})
