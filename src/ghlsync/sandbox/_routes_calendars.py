"""`/calendars/*` appointments, events, calendars, free slots and appointment notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Body, Query, Request

from ghlsync.sandbox._deps import Ctx, CtxDep
from ghlsync.sandbox._errors import SandboxError
from ghlsync.sandbox._models import (
    V3_ONLY_STATUSES,
    AppointmentNote,
    CreateAppointment,
    EditAppointment,
)
from ghlsync.sandbox._records import emit, get_or_404, now_iso, public
from ghlsync.sandbox._routes_contacts import require_contact
from ghlsync.sandbox._state import Record

router = APIRouter()

_RESPONSE_FIELDS = (
    "id",
    "calendarId",
    "locationId",
    "contactId",
    "startTime",
    "endTime",
    "title",
    "meetingLocationType",
    "appointmentStatus",
    "assignedUserId",
    "address",
    "isRecurring",
    "rrule",
)
_EVENT_FIELDS = (
    "id",
    "address",
    "title",
    "calendarId",
    "locationId",
    "contactId",
    "groupId",
    "appointmentStatus",
    "assignedUserId",
    "users",
    "notes",
    "description",
    "isRecurring",
    "rrule",
    "startTime",
    "endTime",
    "dateAdded",
    "dateUpdated",
    "assignedResources",
    "createdBy",
)


def _when(stamp: str) -> datetime:
    """An ISO 8601 time (no offset: read as UTC), or a 400 for anything else.

    A date that parses but whose instant (or a day either side, room for the default end)
    falls outside what a datetime can hold, such as `9999-12-31T23:59:59-12:00`, is refused
    too, so nothing stored can break a later listing.
    """
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        (when - _DAY).astimezone(UTC), (when + _DAY).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise SandboxError(400, f"Invalid date: {stamp}") from exc
    return when


_DAY = timedelta(days=1)


def _epoch_ms(name: str, value: str) -> int:
    """A query value the spec types as a string of epoch milliseconds, or a 400."""
    if not value.isascii() or not value.isdigit() or len(value) > 15:
        raise SandboxError(400, f"{name} must be a number string (epoch milliseconds)")
    return int(value)


def _check_status(fields: dict[str, Any], request: Request) -> None:
    """v2 refuses the statuses only v3's enum has (`completed`, `active`)."""
    v3 = request.headers.get("version") == "v3"
    if not v3 and fields.get("appointmentStatus") in V3_ONLY_STATUSES:
        raise SandboxError(422, ["appointmentStatus must be one of the allowed values"])


def _response(appointment: Record, request: Request) -> Record:
    # v3's AppointmentSchemaResponse adds (and requires) the two timestamps.
    v3 = request.headers.get("version") == "v3"
    fields = (*_RESPONSE_FIELDS, "dateAdded", "dateUpdated") if v3 else _RESPONSE_FIELDS
    return public({k: appointment.get(k) for k in fields})


def _event(appointment: Record) -> Record:
    return public({k: appointment.get(k) for k in _EVENT_FIELDS})


def _appointment_event(ctx: Ctx, kind: str, appointment: Record) -> None:
    fields = (
        "id",
        "address",
        "title",
        "calendarId",
        "contactId",
        "groupId",
        "appointmentStatus",
        "assignedUserId",
        "users",
        "notes",
        "startTime",
        "endTime",
        "dateAdded",
        "dateUpdated",
    )
    body = public({k: appointment.get(k) for k in fields})
    emit(ctx.state, ctx.location, kind, {"appointment": body})


def _calendar(ctx: Ctx, calendar_id: str) -> Record:
    calendar = ctx.location.calendars.get(calendar_id)
    if calendar is None:
        raise SandboxError(400, "Calendar not found")
    return calendar


def _default_end(calendar: Record, start: str) -> str:
    minutes = int(calendar.get("slotDuration", 30))
    return (_when(start) + timedelta(minutes=minutes)).isoformat()


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    """The body fields an appointment keeps (booking options like `toNotify` are not kept)."""
    return {k: v for k, v in fields.items() if k in _EVENT_FIELDS or k == "meetingLocationType"}


def _new_appointment(ctx: Ctx, calendar: Record, start: str) -> Record:
    """An appointment with GHL's defaults, before the caller's fields are applied."""
    now = now_iso(ctx.state)
    return {
        "id": ctx.state.new_id(),
        "title": "Appointment",
        "appointmentStatus": "new",
        "assignedUserId": next(iter(ctx.location.users)),
        "address": "",
        "groupId": calendar.get("groupId", ""),
        "users": [],
        "isRecurring": False,
        "endTime": _default_end(calendar, start),
        "dateAdded": now,
        "dateUpdated": now,
    }


@router.post("/calendars/events/appointments")
async def create_appointment(
    ctx: CtxDep, body: CreateAppointment, request: Request
) -> dict[str, Any]:
    """Book an appointment for a contact on a calendar."""
    location = ctx.check_location(body.locationId)
    _check_status(body.given(), request)
    with ctx.state.lock:
        calendar = _calendar(ctx, body.calendarId)
        if body.contactId not in location.contacts:
            raise SandboxError(400, "Contact not found")
        appointment = _new_appointment(ctx, calendar, body.startTime)
        if "endTime" in body.given():
            _when(body.endTime)
        appointment.update(_stored(body.given()))
        location.appointments[appointment["id"]] = appointment
        _appointment_event(ctx, "AppointmentCreate", appointment)
        return _response(appointment, request)


@router.put("/calendars/events/appointments/{eventId}")
async def edit_appointment(
    ctx: CtxDep, eventId: str, body: EditAppointment, request: Request
) -> dict[str, Any]:
    """Change an appointment."""
    with ctx.state.lock:
        appointment = get_or_404(ctx.location.appointments, eventId, "Appointment")
        fields = body.given()
        _check_status(fields, request)
        if "calendarId" in fields:
            _calendar(ctx, fields["calendarId"])
        for stamp in ("startTime", "endTime"):
            if stamp in fields:
                _when(fields[stamp])
        appointment.update(_stored(fields))
        appointment["dateUpdated"] = now_iso(ctx.state)
        _appointment_event(ctx, "AppointmentUpdate", appointment)
        return _response(appointment, request)


@router.get("/calendars/events/appointments/{eventId}")
async def get_appointment(ctx: CtxDep, eventId: str) -> dict[str, Any]:
    """One appointment."""
    with ctx.state.lock:
        return {"event": _event(get_or_404(ctx.location.appointments, eventId, "Appointment"))}


@router.delete("/calendars/events/{eventId}", status_code=201)
async def delete_event(
    ctx: CtxDep,
    eventId: str,
    body: dict[str, Any] | None = Body(None),  # noqa: B008
) -> dict[str, Any]:
    """Delete an appointment (the spec answers 201)."""
    del body  # GHL's DeleteAppointmentSchema declares no properties
    with ctx.state.lock:
        appointment = get_or_404(ctx.location.appointments, eventId, "Appointment")
        del ctx.location.appointments[eventId]
        _appointment_event(ctx, "AppointmentDelete", appointment)
        return {"succeeded": True}


@router.get("/calendars/events")
async def list_events(
    ctx: CtxDep,
    locationId: str,
    startTime: str,
    endTime: str,
    calendarId: str | None = None,
    userId: str | None = None,
    groupId: str | None = None,
) -> dict[str, Any]:
    """Appointments starting in [startTime, endTime] (epoch ms) for a calendar, user or group."""
    location = ctx.check_location(locationId)
    if not (calendarId or userId or groupId):
        raise SandboxError(400, "Either calendarId, userId or groupId is required")
    low, high = _epoch_ms("startTime", startTime), _epoch_ms("endTime", endTime)
    with ctx.state.lock:
        events = [
            _event(a)
            for a in location.appointments.values()
            if low <= _when(a["startTime"]).timestamp() * 1000 <= high
            and (calendarId is None or a["calendarId"] == calendarId)
            and (userId is None or a.get("assignedUserId") == userId)
            and (groupId is None or a.get("groupId") == groupId)
        ]
        return {"events": events}


@router.get("/contacts/{contactId}/appointments")
async def contact_appointments(ctx: CtxDep, contactId: str) -> dict[str, Any]:
    """A contact's appointments."""
    with ctx.state.lock:
        require_contact(ctx, contactId)
        events = [
            _event(a) for a in ctx.location.appointments.values() if a["contactId"] == contactId
        ]
        return {"events": events}


@router.get("/calendars/")
@router.get("/calendars", include_in_schema=False)
async def list_calendars(ctx: CtxDep, locationId: str) -> dict[str, Any]:
    """The location's calendars."""
    location = ctx.check_location(locationId)
    with ctx.state.lock:
        return {"calendars": [public(c) for c in location.calendars.values()]}


@router.get("/calendars/{calendarId}/free-slots")
async def free_slots(
    ctx: CtxDep,
    calendarId: str,
    startDate: float = Query(allow_inf_nan=False),  # `type: number` (epoch ms) in the spec
    endDate: float = Query(allow_inf_nan=False),
) -> dict[str, Any]:
    """Open slots 09:00-17:00 UTC each day in range, minus booked start times."""
    first, last = _day_of("startDate", startDate), _day_of("endDate", endDate)
    with ctx.state.lock:
        calendar = get_or_404(ctx.location.calendars, calendarId, "Calendar")
        booked = {
            _when(a["startTime"]).timestamp()
            for a in ctx.location.appointments.values()
            if a["calendarId"] == calendarId
        }
        step = timedelta(minutes=int(calendar.get("slotDuration", 30)))
    return _slots(first, last, step, booked)


def _day_of(name: str, epoch_ms: float) -> datetime:
    """The UTC instant of an epoch-ms query value; a 400 when it is no date (e.g. year 10000).

    A day of margin is kept at both ends so the slot loop never steps past a datetime's range.
    """
    try:
        when = datetime.fromtimestamp(epoch_ms / 1000, UTC)
        when - _DAY, when + _DAY
    except (ValueError, OverflowError, OSError) as exc:
        raise SandboxError(400, f"{name} is out of range") from exc
    return when


def _slots(first: datetime, last: datetime, step: timedelta, booked: set[float]) -> dict[str, Any]:
    day = first.replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[str, Any] = {}
    while day <= last and len(out) < 62:
        slot, close = day.replace(hour=9), day.replace(hour=17)
        slots = []
        while slot < close:
            if slot.timestamp() not in booked:
                slots.append(slot.isoformat())
            slot += step
        out[day.date().isoformat()] = {"slots": slots}
        day += timedelta(days=1)
    return out


@router.get("/calendars/{calendarId}")
async def get_calendar(ctx: CtxDep, calendarId: str) -> dict[str, Any]:
    """One calendar."""
    with ctx.state.lock:
        return {"calendar": public(get_or_404(ctx.location.calendars, calendarId, "Calendar"))}


def _appointment_note_of(ctx: Ctx, appointment_id: str, note_id: str) -> Record:
    get_or_404(ctx.location.appointments, appointment_id, "Appointment")
    note = get_or_404(ctx.location.appointment_notes, note_id, "Note")
    if note["appointmentId"] != appointment_id:
        return get_or_404({}, note_id, "Note")
    return note


@router.get("/calendars/appointments/{appointmentId}/notes")
async def list_appointment_notes(
    ctx: CtxDep,
    appointmentId: str,
    limit: float = Query(ge=0, le=20, allow_inf_nan=False),  # the spec's `maximum: 20`
    offset: float = Query(ge=0, allow_inf_nan=False),
) -> dict[str, Any]:
    """An appointment's notes, paged (`limit` and `offset` are required numbers in the spec)."""
    first, count = int(offset), int(limit)
    with ctx.state.lock:
        get_or_404(ctx.location.appointments, appointmentId, "Appointment")
        notes = [
            public(n)
            for n in ctx.location.appointment_notes.values()
            if n["appointmentId"] == appointmentId
        ]
        page = notes[first : first + count]
        return {"notes": page, "hasMore": first + count < len(notes)}


@router.post("/calendars/appointments/{appointmentId}/notes", status_code=201)
async def create_appointment_note(
    ctx: CtxDep, appointmentId: str, body: AppointmentNote
) -> dict[str, Any]:
    """Add a note to an appointment."""
    with ctx.state.lock:
        get_or_404(ctx.location.appointments, appointmentId, "Appointment")
        note = {
            "id": ctx.state.new_id(),
            "appointmentId": appointmentId,
            "dateAdded": now_iso(ctx.state),
            **body.given(),
        }
        ctx.location.appointment_notes[note["id"]] = note
        return {"note": public(note)}


@router.put("/calendars/appointments/{appointmentId}/notes/{noteId}")
async def update_appointment_note(
    ctx: CtxDep, appointmentId: str, noteId: str, body: AppointmentNote
) -> dict[str, Any]:
    """Change an appointment note."""
    with ctx.state.lock:
        note = _appointment_note_of(ctx, appointmentId, noteId)
        note.update(body.given())
        return {"note": public(note)}


@router.delete("/calendars/appointments/{appointmentId}/notes/{noteId}")
async def delete_appointment_note(ctx: CtxDep, appointmentId: str, noteId: str) -> dict[str, Any]:
    """Delete an appointment note."""
    with ctx.state.lock:
        _appointment_note_of(ctx, appointmentId, noteId)
        del ctx.location.appointment_notes[noteId]
        return {"succeded": True}
