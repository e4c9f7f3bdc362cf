"""Contact request bodies (`CreateContactDto`, `UpdateContactDto`, `UpsertContactDto`).

Nested parts are validated as strictly as the top level: a DND channel with an unknown status,
a custom field item with neither `id` nor `key`, or a birth date in none of the documented
formats answers 422 instead of being stored, so nothing read back can break the response schema.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import field_validator, model_validator

from ghlsync.sandbox._models import Body, finite, optional

# The formats `dateOfBirth`'s description lists: YYYY/MM/DD, MM/DD/YYYY, YYYY-MM-DD,
# MM-DD-YYYY, YYYY.MM.DD, MM.DD.YYYY, YYYY_MM_DD, MM_DD_YYYY (one separator throughout).
_YEAR_FIRST = re.compile(r"^(\d{4})([/\-._])(\d{1,2})\2(\d{1,2})$")
_YEAR_LAST = re.compile(r"^(\d{1,2})([/\-._])(\d{1,2})\2(\d{4})$")
DATE_OF_BIRTH_MESSAGE = "dateOfBirth must be a date in one of the supported formats"


def birth_date(value: str) -> str:
    """`value` in one of the documented formats, as `YYYY-MM-DD` (the response's format)."""
    if found := _YEAR_FIRST.match(value):
        year, month, day = found.group(1), found.group(3), found.group(4)
    elif found := _YEAR_LAST.match(value):
        month, day, year = found.group(1), found.group(3), found.group(4)
    else:
        raise ValueError(DATE_OF_BIRTH_MESSAGE)
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError as exc:
        raise ValueError(DATE_OF_BIRTH_MESSAGE) from exc


class DndSetting(Body):
    """`DndSettingSchema`: one channel's do-not-disturb state."""

    status: Literal["active", "inactive", "permanent"]
    message: str = optional()
    code: str = optional()


class DndSettings(Body):
    """`DndSettingsSchema`: per channel, by GHL's channel names."""

    Call: DndSetting = optional()
    Email: DndSetting = optional()
    SMS: DndSetting = optional()
    WhatsApp: DndSetting = optional()
    GMB: DndSetting = optional()
    FB: DndSetting = optional()


class InboundDndSetting(Body):
    """`InboundDndSettingSchema`."""

    status: Literal["active", "inactive"]
    message: str = optional()


class InboundDndSettings(Body):
    """`InboundDndSettingsSchema`."""

    all: InboundDndSetting = optional()


class CustomFieldInput(Body):
    """One item of `customFields`: `id` or `key`, and a `field_value`.

    The spec's item kinds allow a string (text, select), an array of strings (checkbox,
    multi-select) or an object (numeric and monetary, whose examples are numbers, and files).
    """

    id: str = optional()
    key: str = optional()
    field_value: Any = None

    @field_validator("field_value")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, dict | int | float) and not isinstance(value, bool):
            return finite(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ValueError("field_value must be a string, a number, an array of strings or an object")

    @model_validator(mode="after")
    def _named(self) -> CustomFieldInput:
        if not (self.id or self.key):
            raise ValueError("customFields: pass either id or key of a custom field")
        return self


class _ContactFields(Body):
    # Nullable exactly where the spec says `nullable: true`; elsewhere null answers 422.
    firstName: str | None = None
    lastName: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address1: str | None = None
    city: str | None = None
    state: str | None = None
    postalCode: str = optional()
    website: str | None = None
    timezone: str | None = None
    dnd: bool = optional()
    dndSettings: DndSettings = optional()
    inboundDndSettings: InboundDndSettings = optional()
    tags: list[str] = optional()
    customFields: list[CustomFieldInput] = optional()
    source: str | None = None
    # The spec says `type: object`, but its description and example are date strings.
    dateOfBirth: str | None = None
    country: str = optional()
    assignedTo: str | None = None

    @field_validator("dateOfBirth")
    @classmethod
    def _birth_date(cls, value: str | None) -> str | None:
        return birth_date(value) if value is not None else None


class UpdateContact(_ContactFields):
    """`UpdateContactDto`."""


class CreateContact(_ContactFields):
    """`CreateContactDto`."""

    locationId: str
    gender: str = optional()
    companyName: str | None = None
    source: str = optional()  # nullable only in `UpdateContactDto`
    assignedTo: str = optional()


class UpsertContact(CreateContact):
    """`UpsertContactDto`."""

    createNewIfDuplicateAllowed: bool = optional()
