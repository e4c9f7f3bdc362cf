"""Request bodies of the contacts family (contacts, tasks, notes, tags, bulk)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ghlsync.ghl._models._base import Body


class CustomFieldValue(Body):
    """One custom field value on a contact: `id` (or `key`) and `field_value`.

    v3's `fieldValue` is taken too; the client sends whichever the connection's API wants.
    """

    id: str | None = None
    key: str | None = None
    field_value: Any = Field(
        default=None,
        validation_alias=AliasChoices("field_value", "fieldValue"),
        serialization_alias="field_value",
    )


class DndSetting(Body):
    """Do-not-disturb state of one channel."""

    status: Literal["active", "inactive", "permanent"]
    message: str | None = None
    code: str | None = None


def _channel(v2: str, v3: str) -> Any:
    return Field(None, validation_alias=AliasChoices(v2, v3), serialization_alias=v2)


class DndSettings(BaseModel):
    """Per-channel DND; channel names are v2's (`Call`, `Email`, `SMS`, ...), v3's accepted."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    Call: DndSetting | None = _channel("Call", "call")
    Email: DndSetting | None = _channel("Email", "email")
    SMS: DndSetting | None = _channel("SMS", "sms")
    WhatsApp: DndSetting | None = _channel("WhatsApp", "whatsApp")
    GMB: DndSetting | None = _channel("GMB", "gmb")
    FB: DndSetting | None = _channel("FB", "fb")


class InboundDndSetting(Body):
    """Inbound DND state."""

    status: Literal["active", "inactive"]
    message: str | None = None


class InboundDndSettings(Body):
    """Inbound DND for all channels."""

    all: InboundDndSetting | None = None


class _ContactFields(Body):
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address1: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    website: str | None = None
    timezone: str | None = None
    dnd: bool | None = None
    dnd_settings: DndSettings | None = None
    inbound_dnd_settings: InboundDndSettings | None = None
    tags: list[str] | None = None
    custom_fields: list[CustomFieldValue] | None = None
    source: str | None = None
    date_of_birth: str | None = None
    country: str | None = None
    assigned_to: str | None = None


class UpdateContact(_ContactFields):
    """`PUT /contacts/{contactId}`. Note: `tags` here replaces every tag of the contact."""


class CreateContact(_ContactFields):
    """`POST /contacts/`."""

    location_id: str
    gender: str | None = None
    company_name: str | None = None


class UpsertContact(CreateContact):
    """`POST /contacts/upsert` (matched by email/phone per the location's duplicate setting)."""

    create_new_if_duplicate_allowed: bool | None = None


class SearchContacts(Body):
    """`POST /contacts/search` (body undocumented in the spec; fields per GHL's docs)."""

    location_id: str
    page_limit: int = 100
    page: int | None = None
    search_after: list[Any] | None = None
    query: str | None = None
    filters: list[dict[str, Any]] | None = None
    sort: list[dict[str, Any]] | None = None


class TaskBody(Body):
    """`POST /contacts/{contactId}/tasks` (title, dueDate and completed are required)."""

    title: str
    body: str | None = None
    due_date: str
    completed: bool
    assigned_to: str | None = None


class UpdateTask(Body):
    """`PUT /contacts/{contactId}/tasks/{taskId}`."""

    title: str | None = None
    body: str | None = None
    due_date: str | None = None
    completed: bool | None = None
    assigned_to: str | None = None


class TaskCompleted(Body):
    """`PUT /contacts/{contactId}/tasks/{taskId}/completed`."""

    completed: bool


class NoteBody(Body):
    """`POST /contacts/{contactId}/notes`."""

    body: str
    user_id: str | None = None
    title: str | None = None
    color: str | None = None
    pinned: bool | None = None


class UpdateNote(Body):
    """`PUT /contacts/{contactId}/notes/{id}`."""

    body: str | None = None
    user_id: str | None = None
    title: str | None = None
    color: str | None = None
    pinned: bool | None = None


class Tags(Body):
    """Tags to add or remove."""

    tags: list[str]


class Followers(Body):
    """User ids to add or remove as followers."""

    followers: list[str]


class Empty(Body):
    """An operation whose body has no fields."""


class WorkflowBody(Body):
    """Add to / remove from a workflow."""

    event_start_time: str | None = None


class BulkTags(Body):
    """`POST /contacts/bulk/tags/update/{type}`."""

    contacts: list[str]
    tags: list[str]
    location_id: str
    remove_all_tags: bool | None = None


class BulkBusiness(Body):
    """`POST /contacts/bulk/business` (businessId null removes the contacts from it)."""

    location_id: str
    ids: list[str]
    business_id: str | None
