"""`client.calendars`: appointments, events, appointment notes, free slots (Version 2021-04-15)."""

from __future__ import annotations

import builtins
from typing import Any

from ghlsync.ghl._models import Ack, Appointment
from ghlsync.ghl._resources._base import Resource, field, parse, parse_list, with_location


class Calendars(Resource):
    """Calendars and their events; appointments are events with a contact."""

    async def list(self, location_id: str, **params: Any) -> builtins.list[dict[str, Any]]:
        """`GET /calendars/` (params: groupId, showDrafted)."""
        answer = await self._call(
            "get-calendars", location_id, params={"locationId": location_id, **params}
        )
        return builtins.list(field(answer, "calendars") or [])

    async def create_appointment(self, location_id: str, body: Any) -> Appointment:
        """`POST /calendars/events/appointments` (a lost answer raises OutcomeUnknownError)."""
        answer = await self._call(
            "create-appointment", location_id, body=with_location(body, location_id)
        )
        return parse(Appointment, answer, "event")

    async def get_appointment(self, location_id: str, event_id: str) -> Appointment:
        """`GET /calendars/events/appointments/{eventId}`."""
        answer = await self._call("get-appointment", location_id, path={"eventId": event_id})
        return parse(Appointment, answer, "event")

    async def update_appointment(self, location_id: str, event_id: str, body: Any) -> Appointment:
        """`PUT /calendars/events/appointments/{eventId}`."""
        path = {"eventId": event_id}
        answer = await self._call("edit-appointment", location_id, path=path, body=body)
        return parse(Appointment, answer, "event")

    async def delete_event(self, location_id: str, event_id: str) -> Ack:
        """`DELETE /calendars/events/{eventId}` (appointments and blocked slots alike)."""
        return await self._ack("delete-event", location_id, path={"eventId": event_id}, body={})

    async def events(
        self,
        location_id: str,
        *,
        start_time: int | str,
        end_time: int | str,
        calendar_id: str | None = None,
        user_id: str | None = None,
        group_id: str | None = None,
    ) -> builtins.list[Appointment]:
        """`GET /calendars/events` between two epoch-millisecond times."""
        params = {
            "locationId": location_id,
            "startTime": start_time,
            "endTime": end_time,
            "calendarId": calendar_id,
            "userId": user_id,
            "groupId": group_id,
        }
        answer = await self._call("get-calendar-events", location_id, params=params)
        return parse_list(Appointment, answer, "events")

    async def free_slots(
        self,
        location_id: str,
        calendar_id: str,
        *,
        start_date: int,
        end_date: int,
        timezone: str | None = None,
        user_id: str | None = None,
    ) -> Any:
        """`GET /calendars/{calendarId}/free-slots` (epoch-millisecond dates)."""
        params = {
            "startDate": start_date,
            "endDate": end_date,
            "timezone": timezone,
            "userId": user_id,
        }
        path = {"calendarId": calendar_id}
        return await self._call("get-slots", location_id, path=path, params=params)

    async def appointment_notes(
        self, location_id: str, appointment_id: str, *, limit: int = 10, offset: int = 0
    ) -> Any:
        """`GET /calendars/appointments/{appointmentId}/notes`."""
        path = {"appointmentId": appointment_id}
        params = {"limit": limit, "offset": offset}
        return await self._call("get-appointment-notes", location_id, path=path, params=params)

    async def create_appointment_note(
        self, location_id: str, appointment_id: str, body: Any
    ) -> Any:
        """`POST /calendars/appointments/{appointmentId}/notes`."""
        path = {"appointmentId": appointment_id}
        return await self._call("create-appointment-note", location_id, path=path, body=body)

    async def update_appointment_note(
        self, location_id: str, appointment_id: str, note_id: str, body: Any
    ) -> Any:
        """`PUT /calendars/appointments/{appointmentId}/notes/{noteId}`."""
        path = {"appointmentId": appointment_id, "noteId": note_id}
        return await self._call("update-appointment-note", location_id, path=path, body=body)

    async def delete_appointment_note(
        self, location_id: str, appointment_id: str, note_id: str
    ) -> Ack:
        """`DELETE /calendars/appointments/{appointmentId}/notes/{noteId}`."""
        path = {"appointmentId": appointment_id, "noteId": note_id}
        return await self._ack("delete-appointment-note", location_id, path=path)
