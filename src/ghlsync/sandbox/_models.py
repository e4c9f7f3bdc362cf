"""Request bodies as GHL's specs declare them.

GHL validates bodies with class-validator (whitelist, forbid unknown, no implicit conversion),
so the models are strict: unknown properties, `0` for a boolean, `"1"` for a number and `null`
where the spec does not say `nullable` all answer 422. Contact bodies are in `_contact_models`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def optional() -> Any:
    """The default of an optional, non-nullable property: it may be left out, not sent as null.

    Pydantic does not validate defaults, so `name: str = optional()` accepts a missing `name`
    and rejects `"name": null`; `given()` leaves unsent properties out.
    """
    return Field(default=None)


def finite(value: Any) -> Any:
    """`value` unchanged, or a ValueError when it holds Infinity or NaN anywhere.

    Python's JSON reader turns `1e400` into infinity, which no JSON answer can carry; GHL
    (Node.js) cannot store it either. Checked for the free-form values the sandbox keeps.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, dict):
        for item in value.values():
            finite(item)
    elif isinstance(value, list):
        for item in value:
            finite(item)
    return value


class Body(BaseModel):
    """A whitelist-strict request body."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    def given(self) -> dict[str, Any]:
        """Only the properties the caller sent."""
        return self.model_dump(exclude_unset=True)


class Tags(Body):
    """`TagsDTO`."""

    tags: list[str]


class CreateTask(Body):
    """`CreateTaskParams`."""

    title: str
    body: str = optional()
    dueDate: str
    completed: bool
    assignedTo: str = optional()


class UpdateTask(Body):
    """`UpdateTaskBody`."""

    title: str = optional()
    body: str = optional()
    dueDate: str = optional()
    completed: bool = optional()
    assignedTo: str = optional()


class TaskCompleted(Body):
    """`UpdateTaskStatusParams`."""

    completed: bool


class CreateNote(Body):
    """`NotesDTO`."""

    userId: str = optional()
    body: str
    title: str = optional()
    color: str = optional()
    pinned: bool = optional()


class UpdateNote(Body):
    """`UpdateNoteDTO`."""

    userId: str = optional()
    body: str = optional()
    title: str = optional()
    color: str = optional()
    pinned: bool = optional()


AppointmentStatus = Literal[
    "new", "confirmed", "cancelled", "showed", "noshow", "invalid", "completed", "active"
]
V3_ONLY_STATUSES = frozenset({"completed", "active"})  # v2's enum lacks them (routes check)
MeetingLocationType = Literal["custom", "zoom", "gmeet", "phone", "address", "ms_teams", "google"]


class EditAppointment(Body):
    """`AppointmentEditSchema`."""

    title: str = optional()
    meetingLocationType: MeetingLocationType = optional()
    meetingLocationId: str = optional()
    overrideLocationConfig: bool = optional()
    appointmentStatus: AppointmentStatus = optional()
    assignedUserId: str = optional()
    description: str = optional()
    address: str = optional()
    ignoreDateRange: bool = optional()
    toNotify: bool = optional()
    ignoreFreeSlotValidation: bool = optional()
    rrule: str = optional()
    calendarId: str = optional()
    startTime: str = optional()
    endTime: str = optional()


class CreateAppointment(EditAppointment):
    """`AppointmentCreateSchema`."""

    calendarId: str
    locationId: str
    contactId: str
    startTime: str


class SearchContacts(BaseModel):
    """`SearchBodyV2DTO`: the spec declares no properties; these are documented elsewhere."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    locationId: str
    pageLimit: int
    page: int | None = None
    searchAfter: list[Any] | None = None
    query: str | None = None
    filters: list[dict[str, Any]] | None = None
    sort: list[dict[str, Any]] | None = None


class SearchTasks(Body):
    """`TaskSearchParamsDto`."""

    contactId: list[str] = optional()
    completed: bool = optional()
    assignedTo: list[str] = optional()
    query: str = optional()
    limit: float = optional()  # `type: number` in the spec, so 10.0 is as good as 10
    skip: float = optional()
    businessId: str = optional()


class AppointmentNote(Body):
    """Body of appointment notes."""

    body: str
    userId: str = optional()


class CreateCustomField(Body):
    """`CreateCustomFieldsDTO`."""

    name: str
    dataType: str
    placeholder: str = optional()
    acceptedFormat: list[str] = optional()
    isMultipleFile: bool = optional()
    maxNumberOfFiles: float = optional()
    textBoxListOptions: list[Any] = optional()
    position: float = optional()
    model: Literal["contact", "opportunity"] = optional()

    @field_validator("textBoxListOptions")
    @classmethod
    def _finite(cls, value: list[Any]) -> list[Any]:
        return list(finite(value))


class TagBody(Body):
    """`tagBody`."""

    name: str


class Followers(Body):
    """`FollowersDTO`."""

    followers: list[str]


class Workflow(Body):
    """`CreateWorkflowDto`."""

    eventStartTime: str = optional()


class BulkTags(Body):
    """`UpdateTagsDTO`."""

    contacts: list[str]
    tags: list[str]
    locationId: str
    removeAllTags: bool = optional()


class BulkBusiness(Body):
    """`ContactsBusinessUpdate`."""

    locationId: str
    ids: list[str]
    businessId: str | None
