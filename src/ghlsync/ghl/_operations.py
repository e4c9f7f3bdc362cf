"""Registry of every GHL operation the client covers, keyed by the spec's operationId.

Used by `GHLClient.call`, by `ghlsync call`, and by the conformance tests that check each
operation's request against the official spec. `family` names the spec file
(`apps/<family>.json`; for API v3 `apps/v3/<family>-v3.json` where GHL publishes one).

API v3 (`Version: v3`, docs/api-versions.md) covers the contacts, calendars, locations and
businesses families; `v3_path` is where an operation lives there (None: v2 only, so a v3
connection keeps calling it with its v2 Version).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import pydantic

from ghlsync.ghl import _models as m
from ghlsync.ghl._errors import ValidationError

__all__ = [
    "API_VERSIONS",
    "OPERATIONS",
    "V3",
    "V3_FAMILIES",
    "V_CALENDARS",
    "V_DEFAULT",
    "ApiVersion",
    "Operation",
    "find_operation",
]

V_DEFAULT = "2021-07-28"
V_CALENDARS = "2021-04-15"
V3 = "v3"
ApiVersion = Literal["v2", "v3"]
API_VERSIONS: tuple[ApiVersion, ...] = ("v2", "v3")
V3_FAMILIES = frozenset({"contacts", "calendars", "locations", "businesses"})
"""The families with a v3 spec (`apps/v3/<family>-v3.json`) among those the client covers."""
_SAME = "="  # v3_path default: the v2 path
_PARAM = re.compile(r"\{(\w+)\}")


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(
        _PARAM.sub("[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
    )


@dataclass(frozen=True, slots=True)
class Operation:
    """One GHL operation: where it lives, which Version it needs, what body it takes."""

    operation_id: str
    family: str
    method: str
    path: str
    version: str = V_DEFAULT
    body: type[pydantic.BaseModel] | None = None
    idempotent: bool | None = None  # None: decided by the method (POST is not)
    location_query: bool = False  # GHL wants `?locationId=` on this operation
    v3_path: str | None = _SAME  # None: no v3 operation (a v2-only family defaults to None)
    path_params: tuple[str, ...] = field(init=False)
    templates: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The path templates a request may use: the v2 path, then the v3 one when it differs."""
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path_params", tuple(_PARAM.findall(self.path)))
        if self.v3_path == _SAME:
            v3_path = self.path if self.family in V3_FAMILIES else None
            object.__setattr__(self, "v3_path", v3_path)
        templates = tuple(dict.fromkeys((self.path, self.v3_path or self.path)))
        object.__setattr__(self, "templates", templates)
        object.__setattr__(self, "_patterns", tuple(_pattern(t) for t in templates))

    def uses_v3(self, api: str) -> bool:
        """True when a connection on API `api` calls this operation with `Version: v3`."""
        return api == V3 and self.v3_path is not None

    def version_for(self, api: str) -> str:
        """The `Version` header to send on a connection using API `api` ("v2" or "v3")."""
        return V3 if self.uses_v3(api) else self.version

    def path_for(self, api: str) -> str:
        """The path template on a connection using API `api`."""
        return self.v3_path if self.uses_v3(api) and self.v3_path else self.path

    def spec_file(self, api: str) -> str:
        """The spec file, relative to `apps/`, that declares this operation for API `api`."""
        return f"v3/{self.family}-v3.json" if self.uses_v3(api) else f"{self.family}.json"

    def format_path(self, values: Mapping[str, str], api: str = "v2") -> str:
        """The path (for API `api`) with each `{param}` replaced by its URL-quoted value."""
        missing = [p for p in self.path_params if not values.get(p)]
        if missing:
            raise ValidationError(f"{self.operation_id}: missing path parameter(s) {missing}")
        return _PARAM.sub(lambda match: quote(str(values[match[1]]), safe=""), self.path_for(api))

    def v3_filled(self, path: str) -> str:
        """A filled-in v2 `path` of this operation as its v3 path (the same, but for renames)."""
        if not self.v3_path or self.v3_path == self.path:
            return path
        found = _named(self.path).fullmatch(path)
        if found is None:
            return path
        return _PARAM.sub(lambda match: found[match[1]], self.v3_path)

    def matches(self, method: str, path: str) -> bool:
        """True when `method path` (a filled-in path, no query) is this operation (v2 or v3)."""
        if method.upper() != self.method:
            return False
        return any(pattern.fullmatch(path) is not None for pattern in self._patterns)

    def dump_body(self, body: Any) -> Any:
        """The JSON to send: `body` checked against the operation's model (unknown keys fail)."""
        model = self.check_body(body)
        if model is None:
            return None
        return model.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def check_body(self, body: Any) -> pydantic.BaseModel | None:
        """`body` as the operation's model, or `ValidationError` (None: it takes no body).
        A caller that sends `body` as it is (`GHLClient.request`) needs no dump of it."""
        if self.body is None:
            if body is not None:
                raise ValidationError(f"{self.operation_id} takes no request body")
            return None
        if body is None:
            body = {}
        try:
            return body if isinstance(body, self.body) else self.body.model_validate(body)
        except pydantic.ValidationError as exc:
            raise ValidationError(f"{self.operation_id}: invalid request body: {exc}") from None


def _ops(*operations: Operation) -> dict[str, Operation]:
    return {op.operation_id: op for op in operations}


_C = "contacts"
_CONTACTS = (
    Operation("get-contact", _C, "GET", "/contacts/{contactId}"),
    Operation("create-contact", _C, "POST", "/contacts/", body=m.CreateContact),
    Operation("update-contact", _C, "PUT", "/contacts/{contactId}", body=m.UpdateContact),
    Operation("delete-contact", _C, "DELETE", "/contacts/{contactId}"),
    Operation("upsert-contact", _C, "POST", "/contacts/upsert", body=m.UpsertContact,
              idempotent=True),
    Operation("get-contacts", _C, "GET", "/contacts/", location_query=True, v3_path=None),
    Operation("search-contacts-advanced", _C, "POST", "/contacts/search", body=m.SearchContacts,
              idempotent=True),
    Operation("get-duplicate-contact", _C, "GET", "/contacts/search/duplicate",
              location_query=True),
    Operation("get-contacts-by-businessId", _C, "GET", "/contacts/business/{businessId}",
              location_query=True),
    Operation("get-all-tasks", _C, "GET", "/contacts/{contactId}/tasks"),
    Operation("create-task", _C, "POST", "/contacts/{contactId}/tasks", body=m.TaskBody),
    Operation("get-task", _C, "GET", "/contacts/{contactId}/tasks/{taskId}"),
    Operation("update-task", _C, "PUT", "/contacts/{contactId}/tasks/{taskId}",
              body=m.UpdateTask),
    Operation("delete-task", _C, "DELETE", "/contacts/{contactId}/tasks/{taskId}"),
    Operation("update-task-completed", _C, "PUT", "/contacts/{contactId}/tasks/{taskId}/completed",
              body=m.TaskCompleted),
    Operation("get-appointments-for-contact", _C, "GET", "/contacts/{contactId}/appointments"),
    Operation("add-tags", _C, "POST", "/contacts/{contactId}/tags", body=m.Tags,
              idempotent=True),
    Operation("remove-tags", _C, "DELETE", "/contacts/{contactId}/tags", body=m.Tags),
    Operation("get-all-notes", _C, "GET", "/contacts/{contactId}/notes"),
    Operation("create-note", _C, "POST", "/contacts/{contactId}/notes", body=m.NoteBody),
    Operation("get-note", _C, "GET", "/contacts/{contactId}/notes/{id}"),
    Operation("update-note", _C, "PUT", "/contacts/{contactId}/notes/{id}", body=m.UpdateNote),
    Operation("delete-note", _C, "DELETE", "/contacts/{contactId}/notes/{id}"),
    Operation("create-association", _C, "POST", "/contacts/bulk/tags/update/{type}",
              body=m.BulkTags, idempotent=True),
    Operation("add-remove-contact-from-business", _C, "POST", "/contacts/bulk/business",
              body=m.BulkBusiness, idempotent=True),
    Operation("add-followers-contact", _C, "POST", "/contacts/{contactId}/followers",
              body=m.Followers, idempotent=True),
    Operation("remove-followers-contact", _C, "DELETE", "/contacts/{contactId}/followers",
              body=m.Followers),
    Operation("add-contact-to-campaign", _C, "POST",
              "/contacts/{contactId}/campaigns/{campaignId}", body=m.Empty, idempotent=True),
    Operation("remove-contact-from-campaign", _C, "DELETE",
              "/contacts/{contactId}/campaigns/{campaignId}"),
    Operation("remove-contact-from-every-campaign", _C, "DELETE",
              "/contacts/{contactId}/campaigns/removeAll",
              v3_path="/contacts/{contactId}/campaigns/remove-all"),
    Operation("add-contact-to-workflow", _C, "POST", "/contacts/{contactId}/workflow/{workflowId}",
              body=m.WorkflowBody),
    Operation("delete-contact-from-workflow", _C, "DELETE",
              "/contacts/{contactId}/workflow/{workflowId}", body=m.WorkflowBody),
)  # fmt: skip

_K, _V = "calendars", V_CALENDARS
_CALENDARS = (
    Operation("get-calendars", _K, "GET", "/calendars/", _V, location_query=True),
    Operation("create-appointment", _K, "POST", "/calendars/events/appointments", _V,
              body=m.CreateAppointment),
    Operation("get-appointment", _K, "GET", "/calendars/events/appointments/{eventId}", _V),
    Operation("edit-appointment", _K, "PUT", "/calendars/events/appointments/{eventId}", _V,
              body=m.UpdateAppointment),
    Operation("delete-event", _K, "DELETE", "/calendars/events/{eventId}", _V, body=m.Empty),
    Operation("get-calendar-events", _K, "GET", "/calendars/events", _V, location_query=True),
    Operation("get-slots", _K, "GET", "/calendars/{calendarId}/free-slots", _V),
    Operation("get-appointment-notes", _K, "GET",
              "/calendars/appointments/{appointmentId}/notes", _V),
    Operation("create-appointment-note", _K, "POST",
              "/calendars/appointments/{appointmentId}/notes", _V, body=m.AppointmentNote),
    Operation("update-appointment-note", _K, "PUT",
              "/calendars/appointments/{appointmentId}/notes/{noteId}", _V,
              body=m.AppointmentNote),
    Operation("delete-appointment-note", _K, "DELETE",
              "/calendars/appointments/{appointmentId}/notes/{noteId}", _V),
)  # fmt: skip

_L = "locations"
_LOCATIONS = (
    Operation("get-location", _L, "GET", "/locations/{locationId}"),
    Operation("get-custom-fields", _L, "GET", "/locations/{locationId}/customFields"),
    Operation("get-custom-field", _L, "GET", "/locations/{locationId}/customFields/{id}"),
    Operation("create-custom-field", _L, "POST", "/locations/{locationId}/customFields",
              body=m.CreateCustomField),
    Operation("get-location-tags", _L, "GET", "/locations/{locationId}/tags"),
    Operation("create-tag", _L, "POST", "/locations/{locationId}/tags", body=m.TagBody),
    Operation("task-search", _L, "POST", "/locations/{locationId}/tasks/search",
              body=m.TaskSearch, idempotent=True),
)  # fmt: skip

_OTHERS = (
    Operation("get-user-by-location", "users", "GET", "/users/", location_query=True),
    Operation("get-user", "users", "GET", "/users/{userId}"),
    Operation("get-businesses-by-location", "businesses", "GET", "/businesses/",
              location_query=True),
    Operation("get-business", "businesses", "GET", "/businesses/{businessId}"),
    Operation("create-business", "businesses", "POST", "/businesses/", body=m.CreateBusiness),
    Operation("update-business", "businesses", "PUT", "/businesses/{businessId}",
              body=m.UpdateBusiness),
    Operation("delete-Business", "businesses", "DELETE", "/businesses/{businessId}"),
)  # fmt: skip

_O = "opportunities"
_OPPORTUNITIES = (
    Operation("get-lost-reason", _O, "GET", "/opportunities/lost-reason", location_query=True),
    Operation("search-opportunity", _O, "GET", "/opportunities/search"),  # ?location_id=
    Operation("search-opportunities-advanced", _O, "POST", "/opportunities/search",
              body=m.SearchOpportunities, idempotent=True),
    Operation("get-pipelines", _O, "GET", "/opportunities/pipelines", location_query=True),
    Operation("get-opportunity", _O, "GET", "/opportunities/{id}"),
    Operation("delete-opportunity", _O, "DELETE", "/opportunities/{id}"),
    Operation("update-opportunity", _O, "PUT", "/opportunities/{id}", body=m.UpdateOpportunity),
    Operation("update-opportunity-status", _O, "PUT", "/opportunities/{id}/status",
              body=m.UpdateOpportunityStatus),
    Operation("Upsert-opportunity", _O, "POST", "/opportunities/upsert",
              body=m.UpsertOpportunity, idempotent=True),
    Operation("add-followers-opportunity", _O, "POST", "/opportunities/{id}/followers",
              body=m.OpportunityFollowers, idempotent=True),
    Operation("remove-followers-opportunity", _O, "DELETE", "/opportunities/{id}/followers",
              body=m.OpportunityFollowers),
    Operation("create-opportunity", _O, "POST", "/opportunities/", body=m.CreateOpportunity),
    Operation("get-workflow", "workflows", "GET", "/workflows/", location_query=True),
    Operation("get-campaigns", "campaigns", "GET", "/campaigns/", location_query=True),
)  # fmt: skip

_CONVERSATIONS = (
    Operation("send-a-new-message", "conversations", "POST", "/conversations/messages",
              V_CALENDARS, body=m.SendMessage),
)  # fmt: skip

OPERATIONS: dict[str, Operation] = _ops(
    *_CONTACTS, *_CALENDARS, *_LOCATIONS, *_OTHERS, *_OPPORTUNITIES, *_CONVERSATIONS
)
"""Every covered operation by operationId (the spec's, so `ghlsync call` names match docs)."""


@functools.cache
def _named(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    return re.compile(_PARAM.sub(lambda match: f"(?P<{match[1]}>[^/]+)", pattern))


# Literal paths first, so POST /contacts/search is not taken for a /contacts/{contactId}.
_BY_SPECIFICITY = sorted(OPERATIONS.values(), key=lambda op: len(op.path_params))

_Shape = tuple[str, str | None, int]
"""(method, first path segment or None when it is a parameter, number of "/")."""


def _shape(method: str, path: str) -> _Shape:
    count = path.count("/")
    first = path.split("/", 2)[1] if count else ""
    return method, None if "{" in first else first, count


def _index(operations: list[Operation]) -> dict[_Shape, tuple[Operation, ...]]:
    """Shape -> the operations a path of that shape can be, in `_BY_SPECIFICITY` order.

    A template's parameter never spans a "/" and its other characters are literal, so a path
    matches it only with the same number of "/" and, unless the template starts with a
    parameter, the same first segment. A path whose first segment no template has looks in
    the (method, None, count) bucket: the templates starting with a parameter.
    """
    shapes = [{_shape(op.method, t) for t in op.templates} for op in operations]
    literals = {first for group in shapes for _m, first, _n in group if first is not None}
    keys: set[_Shape] = {(m, None, n) for group in shapes for m, _f, n in group}
    keys |= {(m, first, n) for m, _f, n in keys for first in literals}
    index = {
        key: tuple(
            op
            for op, group in zip(operations, shapes, strict=True)
            if key in group or (key[0], None, key[2]) in group
        )
        for key in keys
    }
    return {key: ops for key, ops in index.items() if ops}


_INDEX = _index(_BY_SPECIFICITY)


def find_operation(method: str, path: str) -> Operation | None:
    """The registered operation a raw `request(method, path)` goes to, if any.

    The same answer as trying every operation in `_BY_SPECIFICITY` order, from the few that
    share the path's shape (this runs for every request the client sends).
    """
    return _find(_INDEX, method, path)


def _find(index: dict[_Shape, tuple[Operation, ...]], method: str, path: str) -> Operation | None:
    method = method.upper()
    count = path.count("/")
    first = path.split("/", 2)[1] if count else ""
    candidates = index.get((method, first, count))
    if candidates is None:  # no template starts with `first`: only a parameter can match it
        candidates = index.get((method, None, count), ())
    for operation in candidates:
        if any(pattern.fullmatch(path) for pattern in operation._patterns):
            return operation
    return None
