"""`--live`: GHL's current state of a person, for what the store cannot answer.

Four reads (the contact, its tasks, notes and appointments) through the GHL client, so within
the location's rate budget; a read GHL refuses is reported in `live.errors`, not raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ghlsync.ghl._errors import GHLError

__all__ = ["add_live"]


async def add_live(record: dict[str, Any], client: Any, location_id: str, ghl_id: str) -> None:
    """Fetch GHL's state of contact `ghl_id` into `record["live"]` and its fields' `ghl_live`."""
    live: dict[str, Any] = {"errors": []}
    reads: dict[str, Callable[[], Awaitable[Any]]] = {
        "contact": lambda: client.contacts.get(location_id, ghl_id),
        "tasks": lambda: client.tasks.list(location_id, ghl_id),
        "notes": lambda: client.notes.list(location_id, ghl_id),
        "appointments": lambda: client.contacts.appointments(location_id, ghl_id),
    }
    for name, read in reads.items():
        try:
            live[name] = _plain(await read())
        except GHLError as exc:
            live[name] = None
            live["errors"].append(f"{name}: {exc}")
    contact = live.get("contact") or {}
    for row in record["fields"]:
        row["ghl_live"] = contact.get(row["field"]) if contact else None
    if contact:
        record["tags"]["ghl_live"] = sorted(str(t) for t in contact.get("tags") or [])
    record["live"] = live


def _plain(value: Any) -> Any:
    """Models as plain JSON data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
