"""GHL webhook events as work: which record an event is about, its time, its `Delivery`.

A GHL event becomes a work row like a DripJobs delivery does (`engine.queue._inbox.accept`),
keyed `ghl_<entity>` + the GHL id, so per-entity order, leases and dead letters apply to the
GHL side too. Its source time is the record's `dateUpdated` when the event carries one
(appointments), else the event's `timestamp`: the merge keeps the newest, and a delete is
final (`*Delete` events have the `delete` action, `TaskComplete` the sticky `complete`).

Other GHL event types (InvoicePaid, InboundMessage, ...) are taken only as recipe triggers:
they become `ghl_event` work rows keyed by their record id, which no write-back decides on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ghlsync.engine.queue._inbox import Delivery
from ghlsync.mapping._writeback import EVENT_ENTITY, GHL_EVENTS, OPPORTUNITY_EVENTS

__all__ = [
    "GHL_PREFIX",
    "OTHER_EVENT",
    "event_location",
    "ghl_delivery",
    "is_ghl_event",
    "record_of",
    "source_time",
]

GHL_PREFIX = "ghl_"
OTHER_EVENT = "event"  # the entity of GHL events two-way sync does not take (recipes only)


def is_ghl_event(kind: str) -> bool:
    """True for the record events two-way sync takes (ContactCreate, TaskComplete, ...,
    OpportunityStageUpdate)."""
    return kind in GHL_EVENTS or kind in OPPORTUNITY_EVENTS


def record_of(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record an event describes: `appointment` for Appointment*, else the event itself."""
    inner = event.get("appointment")
    return inner if isinstance(inner, Mapping) else event


def parse_time(value: object) -> float | None:
    """Epoch seconds of a GHL ISO-8601 time (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def source_time(event: Mapping[str, Any]) -> float | None:
    """The event's version: the record's `dateUpdated`, else the event `timestamp`."""
    return parse_time(record_of(event).get("dateUpdated")) or parse_time(event.get("timestamp"))


def _action(kind: str) -> str:
    if kind.endswith("Delete"):
        return "delete"
    if kind == "TaskComplete":
        return "complete"
    return "upsert"


def event_location(event: Mapping[str, Any]) -> str | None:
    """The location a GHL event is about: `locationId`, else `altId` of an `altType: location`
    (invoices, orders); None when it names none."""
    location = event.get("locationId")
    if isinstance(location, str) and location:
        return location
    alt = event.get("altId")
    if event.get("altType") == "location" and isinstance(alt, str) and alt:
        return alt
    return None


def _record_id(event: Mapping[str, Any]) -> object:
    record = record_of(event)
    return record.get("id") or event.get("_id") or event.get("key") or event.get("webhookId")


def ghl_delivery(event: Mapping[str, Any], *, received_at: float) -> Delivery:
    """The `Delivery` of a verified GHL event; raises ValueError when it names no record."""
    kind = str(event.get("type") or "")
    location = event_location(event)
    record_id = _record_id(event)
    if not isinstance(location, str) or not location:
        raise ValueError(f"the {kind} event has no locationId")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError(f"the {kind} event names no record id")
    webhook_id = event.get("webhookId")
    return Delivery(
        connection_id=f"ghl:{location}"[:64],
        location_id=location,
        event=kind,
        delivery_id=str(webhook_id) if webhook_id else None,
        payload=dict(event),
        entity_type=GHL_PREFIX + EVENT_ENTITY.get(kind, OTHER_EVENT),
        source_id=record_id,
        source_updated_at=source_time(event),
        received_at=received_at,
        action=_action(kind),
    )
