"""What the mapper produces: the desired GHL state of each entity an event touches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ghlsync.mapping._config import Action, EntityType
from ghlsync.mapping._errors import MappingError
from ghlsync.mapping._shapes import NOT_ON_UPDATE, REQUIRED_ON_CREATE


@dataclass(frozen=True, order=True)
class EntityKey:
    """One DripJobs entity: its type and its DripJobs id (`contact:1234`)."""

    type: EntityType
    source_id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.source_id}"


@dataclass(frozen=True)
class TagDelta:
    """Tags to add to and remove from a contact that currently has some tags."""

    add: list[str]
    remove: list[str]


@dataclass(frozen=True, eq=True)
class MappedEntity:
    """The desired state of one GHL entity.

    `body` holds what the event says, in GHL field names, shaped as GHL's request body
    (without `locationId`, `contactId`, `calendarId`, which the engine fills in). `defaults`
    holds values GHL requires on create that the event did not carry (a task's due date);
    they must not overwrite GHL on update. Use `request_body("create" | "update")`.
    `sources` names, per GHL field, the DripJobs field(s) whose rules fill it, so an error
    about a missing GHL field names what the sender must map (metadata: not content).
    """

    type: EntityType
    source_id: str
    action: Action
    body: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    tags_add: tuple[str, ...] = ()
    tags_remove_prefixes: tuple[str, ...] = ()
    custom_fields: dict[str, Any] = field(default_factory=dict)
    parent: EntityKey | None = None
    source_updated_at: datetime | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> EntityKey:
        return EntityKey(self.type, self.source_id)

    def request_body(self, operation: Literal["create", "update"]) -> dict[str, Any]:
        """The JSON body for a create (defaults filled in, required fields checked) or update.

        Raises `MappingError` when GHL requires a field on create that nothing supplied.
        """
        if operation == "update":
            skipped = NOT_ON_UPDATE[self.type]
            return {k: v for k, v in self.body.items() if k not in skipped}
        merged = {**self.defaults, **self.body}
        for name in REQUIRED_ON_CREATE[self.type]:
            if name not in merged:
                raise self._missing(name)
        return merged

    def _missing(self, name: str) -> MappingError:
        """The error for a GHL-required field nothing filled, naming the source field(s)."""
        article = "an" if self.type == "appointment" else "a"
        source = self.sources.get(name)
        if source is None:  # no rule fills it: only GHL's name can be given
            return MappingError(name, None, f"is required to create {article} {self.type} in GHL")
        return MappingError(
            source, None, f"is missing: required to create {article} {self.type} in GHL ({name})"
        )

    def tag_delta(self, current: Iterable[str]) -> TagDelta:
        """Given the contact's tags in GHL, what to add and what to remove (case-insensitive)."""
        have = {t.lower() for t in current}
        wanted = set(self.tags_add)
        add = [t for t in self.tags_add if t not in have]
        remove = sorted(
            t
            for t in have
            if t not in wanted and any(t.startswith(p) for p in self.tags_remove_prefixes)
        )
        return TagDelta(add=add, remove=remove)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for `ghlsync preview`, golden files and logs)."""
        return {
            "type": self.type,
            "source_id": self.source_id,
            "action": self.action,
            "parent": str(self.parent) if self.parent else None,
            "body": self.body,
            "defaults": self.defaults,
            "tags_add": list(self.tags_add),
            "tags_remove_prefixes": list(self.tags_remove_prefixes),
            "custom_fields": self.custom_fields,
            "source_updated_at": (
                self.source_updated_at.isoformat() if self.source_updated_at else None
            ),
        }


@dataclass(frozen=True)
class MappedEvent:
    """Every entity one event touches, in the order to write them (a contact before its task)."""

    event: str
    entities: list[MappedEntity]
    # The customer's card in a GHL pipeline (`opportunities:`), synced after the entities.
    opportunity: MappedEntity | None = None

    @property
    def primary(self) -> MappedEntity:
        """The entity the event is about (the last one; a parent contact comes first)."""
        return self.entities[-1]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": self.event,
            "entities": [e.to_dict() for e in self.entities],
        }
        if self.opportunity is not None:
            out["opportunity"] = self.opportunity.to_dict()
        return out


def content_hash(entity: MappedEntity) -> str:
    """A stable hash of what would be written (action, body, tags, custom fields).

    `defaults` are left out on purpose: they only apply on create and may depend on the time.
    """
    content = {
        "type": entity.type,
        "action": entity.action,
        "body": entity.body,
        "tags_add": sorted(entity.tags_add),
        "tags_remove_prefixes": sorted(entity.tags_remove_prefixes),
        "custom_fields": entity.custom_fields,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
