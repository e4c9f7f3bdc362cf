"""The naive baseline: what a Zapier-style "search by email, then create or update" flow does.

Driven by the same deliveries through the same `Mapper` as ghlsync, so both write the same
GHL fields; what differs is the method. Per delivery, with no memory between deliveries (no
dedupe of delivery ids, no ID map, no content hashes):

- contact event: `GET /contacts/search/duplicate?email=` ("Find Contact"), then
  `POST /contacts/` (not found) or `PUT /contacts/{id}` (found) with the event's fields and
  its tags merged into the tags the search returned (a deal-stage tag replaces the old one);
- task / note / appointment event: find the contact the same way (created from the event's
  customer fields if missing), list the contact's tasks / notes / appointments ("Find Task"),
  then create, or update the one that matches: tasks and appointments by title, notes by their
  first line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ghlsync.ghl import GHLClient
from ghlsync.mapping import MappedEntity, Mapper


@dataclass
class NaiveFlow:
    """Runs deliveries through the naive flow against one GHL location."""

    client: GHLClient
    mapper: Mapper
    location_id: str
    calendar_id: str

    async def handle(self, event: str, payload: dict[str, Any]) -> None:
        """One delivery: map it, then search and write each entity it carries."""
        mapped = self.mapper.map(event, payload)
        contact_ids: dict[str, str] = {}
        for entity in mapped.entities:
            if entity.type == "contact":
                primary = entity is mapped.primary
                contact_ids[entity.source_id] = await self._contact(entity, write=primary)
                continue
            assert entity.parent is not None
            parent = contact_ids.get(entity.parent.source_id)
            if parent is None:  # an event without customer fields: the Zap cannot find it
                continue
            await self._child(entity, parent)

    async def _contact(self, entity: MappedEntity, *, write: bool) -> str:
        """Find the contact by email; create it, or (for its own events) update it."""
        email = entity.body.get("email")
        found = await self.client.contacts.find_duplicate(self.location_id, email=email)
        if found is None:
            body = {**entity.request_body("create"), "tags": list(entity.tags_add)}
            created = await self.client.contacts.create(self.location_id, body)
            return created.id
        if write:
            delta = entity.tag_delta(found.tags or [])
            tags = (set(found.tags or []) - set(delta.remove)) | set(delta.add)
            body = {**entity.request_body("update"), "tags": sorted(tags)}
            await self.client.contacts.update(self.location_id, found.id, body)
        return found.id

    async def _child(self, entity: MappedEntity, contact_id: str) -> None:
        if entity.type == "task":
            await self._task(entity, contact_id)
        elif entity.type == "note":
            await self._note(entity, contact_id)
        else:
            await self._appointment(entity, contact_id)

    async def _task(self, entity: MappedEntity, contact_id: str) -> None:
        loc = self.location_id
        tasks = await self.client.tasks.list(loc, contact_id)
        title = entity.body.get("title")
        match = next((t for t in tasks if t.title == title), None)
        if match is None:
            await self.client.tasks.create(loc, contact_id, entity.request_body("create"))
        else:
            await self.client.tasks.update(loc, contact_id, match.id, dict(entity.body))

    async def _note(self, entity: MappedEntity, contact_id: str) -> None:
        loc = self.location_id
        notes = await self.client.notes.list(loc, contact_id)
        heading = _first_line(entity.body.get("body"))
        match = next((n for n in notes if _first_line(n.body) == heading), None)
        if match is None:
            await self.client.notes.create(loc, contact_id, entity.request_body("create"))
        else:
            await self.client.notes.update(loc, contact_id, match.id, dict(entity.body))

    async def _appointment(self, entity: MappedEntity, contact_id: str) -> None:
        loc = self.location_id
        events = await self.client.contacts.appointments(loc, contact_id)
        title = entity.body.get("title")
        match = next((e for e in events if e.get("title") == title), None)
        if match is None:
            body = {
                **entity.request_body("create"),
                "calendarId": self.calendar_id,
                "contactId": contact_id,
            }
            await self.client.calendars.create_appointment(loc, body)
        else:
            await self.client.calendars.update_appointment(loc, match["id"], dict(entity.body))


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]
