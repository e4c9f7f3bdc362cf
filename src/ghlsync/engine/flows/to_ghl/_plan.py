"""Planned GHL calls and the pure decisions behind them: body diffs, tag deltas, hashes.

A flow never talks to the client directly: it hands `PlannedCall`s to a `Sender`. The live
sender sends them; the dry-run sender (for `ghlsync preview`) records them and answers with
placeholders, so a preview walks exactly the code path a real sync walks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

CONTACTS_VERSION = "2021-07-28"
CALENDARS_VERSION = "2021-04-15"


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One GHL request: what `ghlsync preview` shows and what the live sender sends."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    version: str = CONTACTS_VERSION
    purpose: str = ""  # "create", "update", "tags+", "lookup", ... (for people and audits)
    idempotent: bool | None = None  # None: the client decides from the method

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (method, path, params, body, purpose)."""
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.params:
            out["params"] = self.params
        if self.body is not None:
            out["body"] = self.body
        out["purpose"] = self.purpose
        return out


class Sender(Protocol):
    """Where planned calls go: to GHL, or into a preview list."""

    @property
    def live(self) -> bool:
        """False for a dry run: answers are placeholders, nothing is sent."""
        ...

    async def send(self, call: PlannedCall) -> Any:
        """Send `call` and return GHL's parsed JSON answer."""
        ...


class Requester(Protocol):
    """The one client method the flows use (`GHLClient.request`)."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: str,
        version: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any: ...


@dataclass(slots=True)
class LiveSender:
    """Sends through the GHL client and counts the calls made for the current entity."""

    client: Requester
    location_id: str
    calls: int = 0
    live: bool = True

    async def send(self, call: PlannedCall) -> Any:
        """Send one call (the client paces, retries and classifies errors)."""
        self.calls += 1
        return await self.client.request(
            call.method,
            call.path,
            key=self.location_id,
            version=call.version,
            params=call.params,
            json=call.body,
            idempotent=call.idempotent,
        )


@dataclass(slots=True)
class DrySender:
    """Records calls instead of sending them; a create answers with a placeholder id."""

    planned: list[PlannedCall] = field(default_factory=list)
    calls: int = 0
    live: bool = False

    async def send(self, call: PlannedCall) -> Any:
        """Record `call`; answer as GHL would, with `<new ...>` ids and empty lookups."""
        self.calls += 1
        self.planned.append(call)
        return {}


def canonical_hash(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys, no spaces): stable across runs and processes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Keys whose value differs (a key that disappeared counts as changed)."""
    keys = set(before) | set(after)
    return {k for k in keys if before.get(k) != after.get(k)}


@dataclass(frozen=True, slots=True)
class TagDelta:
    """Tags to add and to remove, and the tags we know the contact has once both are done."""

    add: tuple[str, ...]
    remove: tuple[str, ...]
    after: frozenset[str]


def tag_delta(
    current: Iterable[str], add: Iterable[str], remove_prefixes: Iterable[str]
) -> TagDelta:
    """The tag calls still needed, given the tags the contact is known to have.

    `current` is the last-synced tag snapshot (what we made true), or the tags of a record GHL
    just returned. Tags compare lower-cased, as GHL stores them. A tag someone added by hand
    is only removed when it is in `current` and matches a remove prefix.
    """
    have = {t.lower() for t in current}
    wanted = {t.lower() for t in add}
    prefixes = tuple(p.lower() for p in remove_prefixes)
    to_add = tuple(sorted(wanted - have))
    to_remove = tuple(sorted(t for t in have - wanted if prefixes and t.startswith(prefixes)))
    return TagDelta(to_add, to_remove, frozenset((have | wanted) - set(to_remove)))


def only(body: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """`body` restricted to the properties an endpoint accepts (GHL answers 422 to others)."""
    keep = set(allowed)
    return {k: v for k, v in body.items() if k in keep}
