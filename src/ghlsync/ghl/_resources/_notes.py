"""`client.notes`: notes of a contact."""

from __future__ import annotations

import builtins
from typing import Any

from ghlsync.ghl._models import Ack, Note
from ghlsync.ghl._resources._base import Resource, parse, parse_list


class Notes(Resource):
    """Contact notes."""

    async def list(self, location_id: str, contact_id: str) -> builtins.list[Note]:
        """`GET /contacts/{contactId}/notes`."""
        answer = await self._call("get-all-notes", location_id, path={"contactId": contact_id})
        return parse_list(Note, answer, "notes")

    async def get(self, location_id: str, contact_id: str, note_id: str) -> Note:
        """`GET /contacts/{contactId}/notes/{id}`."""
        path = {"contactId": contact_id, "id": note_id}
        return parse(Note, await self._call("get-note", location_id, path=path), "note")

    async def create(self, location_id: str, contact_id: str, body: Any) -> Note:
        """`POST /contacts/{contactId}/notes` (a lost answer raises OutcomeUnknownError)."""
        path = {"contactId": contact_id}
        return parse(
            Note, await self._call("create-note", location_id, path=path, body=body), "note"
        )

    async def update(self, location_id: str, contact_id: str, note_id: str, body: Any) -> Note:
        """`PUT /contacts/{contactId}/notes/{id}`."""
        path = {"contactId": contact_id, "id": note_id}
        answer = await self._call("update-note", location_id, path=path, body=body)
        return parse(Note, answer, "note")

    async def delete(self, location_id: str, contact_id: str, note_id: str) -> Ack:
        """`DELETE /contacts/{contactId}/notes/{id}`."""
        path = {"contactId": contact_id, "id": note_id}
        return await self._ack("delete-note", location_id, path=path)
