"""Small helpers shared by the record stores: timestamps, public shapes, ownership checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ghlsync.sandbox._errors import SandboxError, not_found, unprocessable
from ghlsync.sandbox._state import Location, Principal, Record, SandboxState


def iso(epoch: float) -> str:
    """GHL's timestamp format: `2024-01-31T12:00:00.000Z`."""
    stamp = datetime.fromtimestamp(epoch, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def now_iso(state: SandboxState) -> str:
    """The current time in GHL's format."""
    return iso(state.clock.now())


def public(record: Record) -> Record:
    """A record as GHL returns it: no internal keys, no nulls (the specs declare none nullable)."""
    return {k: v for k, v in record.items() if v is not None and not k.startswith("_")}


def location_of(
    state: SandboxState, principal: Principal, location_id: str | None = None
) -> Location:
    """The principal's location; 403 when a different location id is asked for."""
    if location_id is not None and location_id != principal.location_id:
        raise SandboxError(403, "The token does not have access to this location.")
    location = state.location(principal.location_id or "")
    if location is None:
        raise not_found("Location")
    return location


def get_or_404(table: dict[str, Record], record_id: str, what: str) -> Record:
    """A stored record by id, or a 404."""
    record = table.get(record_id)
    if record is None:
        raise not_found(what)
    return record


def emit(state: SandboxState, location: Location, event_type: str, data: dict[str, Any]) -> None:
    """Queue a GHL-shaped webhook event (delivered by the webhook dispatcher, if configured)."""
    hook = state.event_hook
    if hook is None:
        return
    event = {
        "type": event_type,
        "locationId": location.id,
        **data,
        "webhookId": str(uuid.UUID(int=state.rng.getrandbits(128), version=4)),
        "timestamp": now_iso(state),
    }
    hook(event)


def number_string(name: str, value: str) -> int:
    """A query value the spec types as a string holding a count (`limit`, `skip`), or GHL's 422.

    class-validator's `IsNumberString` wording; anything but plain ASCII digits is refused, so
    `limit=` or `limit=ten` cannot reach `int()` and fail as a 500.
    """
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise unprocessable(f"{name} must be a number string")
    return int(value)
