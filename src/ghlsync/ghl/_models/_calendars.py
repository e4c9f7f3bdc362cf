"""Request bodies of the calendars family (Version 2021-04-15)."""

from __future__ import annotations

from ghlsync.ghl._models._base import Body


class _AppointmentFields(Body):
    title: str | None = None
    meeting_location_type: str | None = None
    meeting_location_id: str | None = None
    override_location_config: bool | None = None
    appointment_status: str | None = None
    assigned_user_id: str | None = None
    description: str | None = None
    address: str | None = None
    ignore_date_range: bool | None = None
    to_notify: bool | None = None
    ignore_free_slot_validation: bool | None = None
    rrule: str | None = None
    start_time: str | None = None
    end_time: str | None = None


class CreateAppointment(_AppointmentFields):
    """`POST /calendars/events/appointments`."""

    calendar_id: str
    location_id: str
    contact_id: str
    start_time: str


class UpdateAppointment(_AppointmentFields):
    """`PUT /calendars/events/appointments/{eventId}`."""

    calendar_id: str | None = None


class AppointmentNote(Body):
    """Appointment note create/update."""

    body: str
    user_id: str | None = None
