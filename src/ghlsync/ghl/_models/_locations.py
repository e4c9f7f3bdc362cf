"""Request bodies of locations (custom fields, tags, task search) and businesses."""

from __future__ import annotations

from typing import Any, Literal

from ghlsync.ghl._models._base import Body


class CreateCustomField(Body):
    """`POST /locations/{locationId}/customFields`."""

    name: str
    data_type: str
    placeholder: str | None = None
    accepted_format: list[str] | None = None
    is_multiple_file: bool | None = None
    max_number_of_files: int | None = None
    text_box_list_options: list[dict[str, Any]] | None = None
    position: int | None = None
    model: Literal["contact", "opportunity"] | None = None


class TagBody(Body):
    """A location tag."""

    name: str


class TaskSearch(Body):
    """`POST /locations/{locationId}/tasks/search`."""

    contact_id: list[str] | None = None
    completed: bool | None = None
    assigned_to: list[str] | None = None
    query: str | None = None
    limit: int | None = None
    skip: int | None = None
    business_id: str | None = None


class CreateBusiness(Body):
    """`POST /businesses/`."""

    name: str
    location_id: str
    phone: str | None = None
    email: str | None = None
    website: str | None = None
    address: str | None = None
    city: str | None = None
    postal_code: str | None = None
    state: str | None = None
    country: str | None = None
    description: str | None = None


class UpdateBusiness(Body):
    """`PUT /businesses/{businessId}`."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    postal_code: str | None = None
    website: str | None = None
    address: str | None = None
    state: str | None = None
    city: str | None = None
    country: str | None = None
    description: str | None = None
