"""JSON text for the engine's payload and event-list columns (same bytes on every database)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ghlsync.engine.queue._merge import EventList, event_rank

# `json.dumps` with these arguments builds a new encoder on every call; the receiver encodes
# every delivery's payload, so one is built once.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def dumps(payload: Mapping[str, Any]) -> str:
    """A payload as compact JSON; values JSON cannot hold become strings."""
    return _ENCODE(payload)


def loads(text: str | None) -> dict[str, Any]:
    """A payload column back as a dict (empty for NULL or a non-object)."""
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def dump_events(events: EventList) -> str:
    """The events-to-run list as JSON `[[event, rank], ...]`."""
    return json.dumps([[name, rank] for name, rank in events], separators=(",", ":"))


def load_events(text: str | None, fallback_event: str) -> EventList:
    """The events-to-run list; rows without one run their effective event."""
    items = json.loads(text) if text else []
    events = tuple((str(name), int(rank)) for name, rank in items)
    return events or ((fallback_event, event_rank(fallback_event)),)
