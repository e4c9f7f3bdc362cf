"""What GHL accepts per entity type, from the official request schemas (apps/contacts.json,
apps/calendars.json). Unknown body properties are answered 422, so config is checked against
these lists on load and bodies against the schemas in the tests.

`locationId`, `contactId`, `calendarId`, `tags` and `customFields` are not listed: the engine
fills the ids in, and tags and custom fields travel in their own fields of `MappedEntity`.
"""

from __future__ import annotations

from typing import Final

from ghlsync.mapping._config import EntityType

BODY_FIELDS: Final[dict[EntityType, frozenset[str]]] = {
    # UpsertContactDto / CreateContactDto
    "contact": frozenset(
        [
            "firstName",
            "lastName",
            "name",
            "email",
            "gender",
            "phone",
            "address1",
            "city",
            "state",
            "postalCode",
            "website",
            "timezone",
            "dnd",
            "source",
            "dateOfBirth",
            "country",
            "companyName",
            "assignedTo",
        ]
    ),
    # CreateTaskParams / UpdateTaskBody
    "task": frozenset({"title", "body", "dueDate", "completed", "assignedTo"}),
    # NotesDTO / UpdateNoteDTO
    "note": frozenset({"body", "userId", "title", "color", "pinned"}),
    # AppointmentCreateSchema / AppointmentEditSchema
    "appointment": frozenset(
        [
            "title",
            "meetingLocationType",
            "meetingLocationId",
            "overrideLocationConfig",
            "appointmentStatus",
            "assignedUserId",
            "description",
            "address",
            "ignoreDateRange",
            "toNotify",
            "ignoreFreeSlotValidation",
            "rrule",
            "startTime",
            "endTime",
        ]
    ),
}

REQUIRED_ON_CREATE: Final[dict[EntityType, tuple[str, ...]]] = {
    "contact": (),
    "task": ("title", "dueDate", "completed"),
    "note": ("body",),
    "appointment": ("startTime",),
}

# UpdateContactDto (PUT /contacts/{id}) lacks these two; upsert accepts them.
NOT_ON_UPDATE: Final[dict[EntityType, frozenset[str]]] = {
    "contact": frozenset({"companyName", "gender"}),
    "task": frozenset(),
    "note": frozenset(),
    "appointment": frozenset(),
}

ACTIONS_BY_TYPE: Final[dict[EntityType, frozenset[str]]] = {
    "contact": frozenset({"upsert", "delete"}),
    "task": frozenset({"upsert", "delete", "complete"}),
    "note": frozenset({"upsert", "delete"}),
    "appointment": frozenset({"upsert", "delete", "cancel"}),
}
