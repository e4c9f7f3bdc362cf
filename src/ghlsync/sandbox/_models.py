"""Request bodies as GHL's specs declare them. Unknown properties are rejected (422)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A whitelist-strict request body."""

    model_config = ConfigDict(extra="forbid")

    def given(self) -> dict[str, Any]:
        """Only the properties the caller sent."""
        return self.model_dump(exclude_unset=True)


class _ContactFields(Body):
    firstName: str | None = None
    lastName: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address1: str | None = None
    city: str | None = None
    state: str | None = None
    postalCode: str | None = None
    website: str | None = None
    timezone: str | None = None
    dnd: bool | None = None
    dndSettings: dict[str, Any] | None = None
    inboundDndSettings: dict[str, Any] | None = None
    tags: list[str] | None = None
    customFields: list[dict[str, Any]] | None = None
    source: str | None = None
    dateOfBirth: Any = None
    country: str | None = None
    assignedTo: str | None = None


class UpdateContact(_ContactFields):
    """`UpdateContactDto`."""


class CreateContact(_ContactFields):
    """`CreateContactDto`."""

    locationId: str
    gender: str | None = None
    companyName: str | None = None


class UpsertContact(CreateContact):
    """`UpsertContactDto`."""

    createNewIfDuplicateAllowed: bool | None = None


class Tags(Body):
    """`TagsDTO`."""

    tags: list[str]


class CreateTask(Body):
    """`CreateTaskParams`."""

    title: str
    body: str | None = None
    dueDate: str
    completed: bool
    assignedTo: str | None = None


class UpdateTask(Body):
    """`UpdateTaskBody`."""

    title: str | None = None
    body: str | None = None
    dueDate: str | None = None
    completed: bool | None = None
    assignedTo: str | None = None


class TaskCompleted(Body):
    """`UpdateTaskStatusParams`."""

    completed: bool


class CreateNote(Body):
    """`NotesDTO`."""

    userId: str | None = None
    body: str
    title: str | None = None
    color: str | None = None
    pinned: bool | None = None


class UpdateNote(Body):
    """`UpdateNoteDTO`."""

    userId: str | None = None
    body: str | None = None
    title: str | None = None
    color: str | None = None
    pinned: bool | None = None


AppointmentStatus = Literal["new", "confirmed", "cancelled", "showed", "noshow", "invalid"]
MeetingLocationType = Literal["custom", "zoom", "gmeet", "phone", "address", "ms_teams", "google"]


class EditAppointment(Body):
    """`AppointmentEditSchema`."""

    title: str | None = None
    meetingLocationType: MeetingLocationType | None = None
    meetingLocationId: str | None = None
    overrideLocationConfig: bool | None = None
    appointmentStatus: AppointmentStatus | None = None
    assignedUserId: str | None = None
    description: str | None = None
    address: str | None = None
    ignoreDateRange: bool | None = None
    toNotify: bool | None = None
    ignoreFreeSlotValidation: bool | None = None
    rrule: str | None = None
    calendarId: str | None = None
    startTime: str | None = None
    endTime: str | None = None


class CreateAppointment(EditAppointment):
    """`AppointmentCreateSchema`."""

    calendarId: str
    locationId: str
    contactId: str
    startTime: str


class SearchContacts(BaseModel):
    """`SearchBodyV2DTO`: the spec declares no properties; these are documented elsewhere."""

    model_config = ConfigDict(extra="allow")

    locationId: str
    pageLimit: int
    page: int | None = None
    searchAfter: list[Any] | None = None
    query: str | None = None
    filters: list[dict[str, Any]] | None = None
    sort: list[dict[str, Any]] | None = None


class SearchTasks(Body):
    """`TaskSearchParamsDto`."""

    contactId: list[str] | None = None
    completed: bool | None = None
    assignedTo: list[str] | None = None
    query: str | None = None
    limit: int | None = None
    skip: int | None = None
    businessId: str | None = None


class AppointmentNote(Body):
    """Body of appointment notes."""

    body: str
    userId: str | None = None


class CreateCustomField(Body):
    """`CreateCustomFieldsDTO`."""

    name: str
    dataType: str
    placeholder: str | None = None
    acceptedFormat: list[str] | None = None
    isMultipleFile: bool | None = None
    maxNumberOfFiles: int | None = None
    textBoxListOptions: list[Any] | None = None
    position: int | None = None
    model: Literal["contact", "opportunity"] | None = None


class TagBody(Body):
    """`tagBody`."""

    name: str


class Followers(Body):
    """`FollowersDTO`."""

    followers: list[str]


class Workflow(Body):
    """`CreateWorkflowDto`."""

    eventStartTime: str | None = None


class BulkTags(Body):
    """`UpdateTagsDTO`."""

    contacts: list[str]
    tags: list[str]
    locationId: str
    removeAllTags: bool | None = None


class BulkBusiness(Body):
    """`ContactsBusinessUpdate`."""

    locationId: str
    ids: list[str]
    businessId: str | None
