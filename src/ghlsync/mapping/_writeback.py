"""The `writeback:` section of `ghlsync.yaml`: GHL changes written back to DripJobs.

DripJobs has no public API; its Zapier app has actions. A write-back is a signed JSON POST to
the Catch Hook URL of a Zap that runs one DripJobs action (docs/two-way.md). This module is
the typed shape of that section:

- `secret`: the Standard Webhooks signing secret (`whsec_...`) of every write-back;
- `actions.<action>.url`: the Catch Hook URL per action (no URL: the write-back is recorded as
  skipped, not an error);
- `fields`: GHL field → flat field of the write-back, per GHL entity, with the field's
  owner rule (`dripjobs` | `ghl` | `newest`) for contacts;
- `triggers`: which GHL event, under which condition, becomes which action.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    field_validator,
)

from ghlsync._secret import Secret


def _secret(value: object) -> object:
    if isinstance(value, str):
        return Secret(value) if value else None
    return value


# Like `_config.MaskedSecret` (not imported from there: `_config` imports this module).
_Signing = Annotated[Secret, BeforeValidator(_secret), PlainSerializer(str, return_type=str)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, arbitrary_types_allowed=True, frozen=True
    )


WritebackAction = Literal[
    "create_lead", "create_appointment_request", "update_appointment", "move_deal"
]
WRITEBACK_ACTIONS: tuple[str, ...] = (
    "create_lead",
    "create_appointment_request",
    "update_appointment",
    "move_deal",
)
Owner = Literal["dripjobs", "ghl", "newest"]
GHLEvent = Literal[
    "ContactCreate",
    "ContactUpdate",
    "ContactDelete",
    "ContactTagUpdate",
    "TaskCreate",
    "TaskComplete",
    "TaskDelete",
    "NoteCreate",
    "NoteUpdate",
    "NoteDelete",
    "AppointmentCreate",
    "AppointmentUpdate",
    "AppointmentDelete",
]
GHL_EVENTS: tuple[str, ...] = GHLEvent.__args__  # type: ignore[attr-defined]
# Card moves in a configured pipeline (`opportunities:`): taken without a trigger, they become
# `move_deal` (engine/flows/to_dripjobs/_opportunity.py).
OPPORTUNITY_EVENTS: tuple[str, ...] = ("OpportunityStageUpdate", "OpportunityStatusUpdate")
Condition = Literal["always", "unlinked", "changed", "tag_added"]

# The flat fields each action takes (the wire contract, docs/two-way.md).
_PERSON = ("ghl_contact_id", "email", "phone", "first_name", "last_name")
ACTION_FIELDS: dict[str, frozenset[str]] = {
    "create_lead": frozenset((*_PERSON, "address", "city", "state", "zip", "lead_source", "notes")),
    "create_appointment_request": frozenset(
        (*_PERSON, "ghl_appointment_id", "start", "end", "title")
    ),
    "update_appointment": frozenset((*_PERSON, "ghl_appointment_id", "start", "end", "title")),
    "move_deal": frozenset(("ghl_contact_id", "email", "phone", "stage", "ghl_opportunity_id")),
}
# Which GHL entity each event is about.
EVENT_ENTITY: dict[str, str] = {
    **{e: "contact" for e in GHL_EVENTS if e.startswith("Contact")},
    **{e: "task" for e in GHL_EVENTS if e.startswith("Task")},
    **{e: "note" for e in GHL_EVENTS if e.startswith("Note")},
    **{e: "appointment" for e in GHL_EVENTS if e.startswith("Appointment")},
    **{e: "opportunity" for e in OPPORTUNITY_EVENTS},
}


class ActionTarget(_Model):
    """Where one action's write-backs go: the Catch Hook URL of its Zap."""

    url: HttpUrl | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return None if value == "" else value


class WritebackField(_Model):
    """One GHL field → one flat write-back field; `owner` rules a two-sided conflict."""

    source: str = Field(alias="from", min_length=1)
    target: str = Field(alias="to", min_length=1)
    owner: Owner | None = None


class WritebackFields(_Model):
    """Field rules per GHL entity."""

    contact: list[WritebackField] = []
    appointment: list[WritebackField] = []


class Trigger(_Model):
    """A GHL event that becomes a write-back action when its condition holds.

    `when`: `always`; `unlinked` (the GHL record is not one ghlsync created or already linked
    to a DripJobs record, so it is new to DripJobs); `changed` (one of `fields` changed since
    the last known GHL state, and not by ghlsync); `tag_added` (a tag starting with `prefix`
    was added; the rest of the tag is the deal `stage`).
    """

    event: GHLEvent
    action: WritebackAction
    when: Condition = "always"
    fields: list[str] = []
    prefix: str | None = None


class WritebackSettings(_Model):
    """The whole `writeback:` section."""

    secret: _Signing | None = None
    timeout: float = Field(10.0, gt=0, description="seconds per POST")
    max_attempts: int = Field(10, ge=1)
    actions: dict[WritebackAction, ActionTarget] = {}
    default_owner: Owner = "newest"
    fields: WritebackFields = WritebackFields()
    triggers: list[Trigger] = []

    @property
    def enabled(self) -> bool:
        """True when any action has a URL: two-way sync is switched on."""
        return any(target.url is not None for target in self.actions.values())

    def url(self, action: str) -> str | None:
        """The Catch Hook URL of `action`, or None when none is configured."""
        target = self.actions.get(action)  # type: ignore[call-overload]
        return str(target.url) if target is not None and target.url is not None else None

    def owner(self, ghl_field: str) -> Owner:
        """The owner rule of one GHL contact field."""
        for rule in self.fields.contact:
            if rule.source == ghl_field and rule.owner is not None:
                return rule.owner
        return self.default_owner


Loc = tuple[str | int, ...]


def check_writeback(settings: WritebackSettings) -> list[tuple[Loc, object, str]]:
    """Cross-key problems of `writeback:`: targets an action cannot take, triggers whose
    event and action do not fit, conditions missing their parameters, a secret that is not
    a Standard Webhooks secret."""
    problems: list[tuple[Loc, object, str]] = []
    secret = settings.secret.reveal() if settings.secret is not None else None
    if secret is not None and not _is_whsec(secret):
        problems.append((("writeback", "secret"), settings.secret, _WHSEC_HINT))
    for entity in ("contact", "appointment"):
        allowed = _TARGETS[entity]
        for index, rule in enumerate(getattr(settings.fields, entity)):
            if rule.target not in allowed:
                loc: Loc = ("writeback", "fields", entity, index, "to")
                problems.append(
                    (loc, rule.target, "is not a write-back field; one of " + _list(allowed))
                )
            if entity != "contact" and rule.owner is not None:
                loc = ("writeback", "fields", entity, index, "owner")
                problems.append((loc, rule.owner, "only applies to contact fields"))
    for index, trigger in enumerate(settings.triggers):
        problems += _trigger(("writeback", "triggers", index), trigger)
    return problems


_WHSEC_HINT = "must be a Standard Webhooks secret: whsec_ followed by base64 (at least 24 bytes)"
_TARGETS = {
    "contact": ACTION_FIELDS["create_lead"] - {"ghl_contact_id"},
    "appointment": frozenset(("start", "end", "title")),
}
_ACTION_ENTITY = {
    "create_lead": {"contact"},
    "move_deal": {"contact"},
    "create_appointment_request": {"appointment"},
    "update_appointment": {"appointment"},
}


def _trigger(loc: Loc, trigger: Trigger) -> list[tuple[Loc, object, str]]:
    problems: list[tuple[Loc, object, str]] = []
    entity = EVENT_ENTITY[trigger.event]
    if entity not in _ACTION_ENTITY[trigger.action]:
        wanted = _list(e for e in GHL_EVENTS if EVENT_ENTITY[e] in _ACTION_ENTITY[trigger.action])
        problems.append(
            ((*loc, "event"), trigger.event, f"cannot become {trigger.action}; one of {wanted}")
        )
    if trigger.when == "tag_added" and not trigger.prefix:
        problems.append(((*loc, "prefix"), None, "is required with when: tag_added (e.g. 'deal:')"))
    if trigger.when == "changed" and not trigger.fields:
        problems.append(
            ((*loc, "fields"), [], "is required with when: changed (the GHL fields to watch)")
        )
    return problems


def _list(names: object) -> str:
    return ", ".join(sorted(names))  # type: ignore[call-overload]


def _is_whsec(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(key) >= 24
