"""Response models: the fields we read, typed; every other field kept as it came."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ghlsync.ghl._models._base import Answer


class Contact(Answer):
    """A GHL contact (unknown fields kept)."""

    id: str
    location_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    tags: list[str] | None = None


class UpsertResult(Answer):
    """What `POST /contacts/upsert` answers: the contact and whether it was created."""

    contact: Contact
    new: bool = False


class ContactPage(Answer):
    """One page of the deprecated `GET /contacts/`."""

    contacts: list[Contact] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


class SearchPage(Answer):
    """One page of `POST /contacts/search`."""

    contacts: list[dict[str, Any]] = Field(default_factory=list)
    total: int | None = None


class Task(Answer):
    """A contact task."""

    id: str
    title: str | None = None
    body: str | None = None
    due_date: str | None = None
    completed: bool | None = None
    contact_id: str | None = None
    assigned_to: str | None = None


class Note(Answer):
    """A contact note."""

    id: str
    body: str | None = None
    contact_id: str | None = None
    user_id: str | None = None


class Appointment(Answer):
    """A calendar event (appointment)."""

    id: str
    calendar_id: str | None = None
    location_id: str | None = None
    contact_id: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    title: str | None = None
    appointment_status: str | None = None


class CustomField(Answer):
    """A location custom field."""

    id: str
    name: str | None = None
    field_key: str | None = None
    data_type: str | None = None
    model: str | None = None


class Tag(Answer):
    """A location tag."""

    id: str | None = None
    name: str


class Ack(Answer):
    """A delete or action answer (`succeded`/`succeeded`, GHL spells both)."""
