"""Tasks, notes and appointments: where each lives in GHL and how its calls are shaped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ghlsync.engine.flows.to_ghl._plan import CALENDARS_VERSION, CONTACTS_VERSION, PlannedCall, only
from ghlsync.mapping import MappingError

_TASK_FIELDS = ("title", "body", "dueDate", "completed", "assignedTo")
_NOTE_FIELDS = ("body", "userId", "title", "color", "pinned")
_APPOINTMENT_FIELDS = (
    "title", "meetingLocationType", "meetingLocationId", "overrideLocationConfig",
    "appointmentStatus", "assignedUserId", "description", "address", "ignoreDateRange",
    "toNotify", "ignoreFreeSlotValidation", "rrule", "calendarId", "startTime", "endTime",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Kind:
    """One child entity type: its endpoints, fields and how a lost create is recognised."""

    entity_type: str
    wrapper: str  # key of the object in create answers ("task"), or "" for top-level
    list_keys: tuple[str, ...]  # keys of the list in the contact's list answer
    match_keys: tuple[str, ...]  # what identifies our create among the contact's records
    fields: tuple[str, ...]

    def create(
        self, contact_id: str, body: Mapping[str, Any], location_id: str, calendar_id: str | None
    ) -> PlannedCall:
        """The create call."""
        sendable = only(body, self.fields)
        if self.entity_type != "appointment":
            return PlannedCall(
                "POST",
                f"/contacts/{contact_id}/{self.entity_type}s",
                body=sendable,
                purpose="create",
                idempotent=False,
            )
        sendable.update(
            calendarId=sendable.get("calendarId") or _calendar(calendar_id),
            locationId=location_id,
            contactId=contact_id,
        )
        return PlannedCall(
            "POST",
            "/calendars/events/appointments",
            body=sendable,
            version=CALENDARS_VERSION,
            purpose="create",
            idempotent=False,
        )

    def update(self, contact_id: str, ghl_id: str, changed: Mapping[str, Any]) -> PlannedCall:
        """The one call that writes `changed` (a lone `completed` uses the status endpoint)."""
        body = only(changed, self.fields)
        if self.entity_type == "appointment":
            return PlannedCall(
                "PUT",
                f"/calendars/events/appointments/{ghl_id}",
                body=body,
                version=CALENDARS_VERSION,
                purpose="update",
            )
        path = f"/contacts/{contact_id}/{self.entity_type}s/{ghl_id}"
        if self.entity_type == "task" and set(body) == {"completed"}:
            return PlannedCall("PUT", f"{path}/completed", body=body, purpose="status")
        return PlannedCall("PUT", path, body=body, purpose="update")

    def delete(self, contact_id: str, ghl_id: str) -> PlannedCall:
        """The delete call."""
        if self.entity_type == "appointment":
            return PlannedCall(
                "DELETE",
                f"/calendars/events/{ghl_id}",
                body={},
                version=CALENDARS_VERSION,
                purpose="delete",
            )
        path = f"/contacts/{contact_id}/{self.entity_type}s/{ghl_id}"
        return PlannedCall("DELETE", path, purpose="delete")

    def list_(self, contact_id: str) -> PlannedCall:
        """The contact's records of this kind (to find a create whose answer was lost)."""
        path = f"/contacts/{contact_id}/{self.entity_type}s"
        return PlannedCall("GET", path, version=CONTACTS_VERSION, purpose="lookup")


TASK = Kind("task", "task", ("tasks",), ("title", "dueDate"), _TASK_FIELDS)
NOTE = Kind("note", "note", ("notes",), ("body",), _NOTE_FIELDS)
APPOINTMENT = Kind(
    "appointment",
    "appointment",
    ("events", "appointments"),
    ("startTime", "calendarId"),
    _APPOINTMENT_FIELDS,
)
KINDS = {k.entity_type: k for k in (TASK, NOTE, APPOINTMENT)}


def _calendar(calendar_id: str | None) -> str:
    if not calendar_id:
        raise MappingError(
            "calendar_id",
            None,
            "is not configured: appointments need a GHL calendar (set GHLSYNC_GHL_CALENDAR_ID)",
        )
    return calendar_id
