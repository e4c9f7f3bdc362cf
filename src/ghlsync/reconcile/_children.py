"""The children of each mapped contact (tasks, notes, appointments) against GHL.

The store knows every child it created (ID map, confirmed) and what it last wrote (the sync
state's `body`, and `contact_id`: the GHL contact it lives under). Per contact that has
children of a kind, one list call (`GET /contacts/{id}/tasks|notes|appointments`) shows what
GHL holds; a child missing from it was deleted in GHL (or its id no longer exists), a field
that differs from our last write was changed there. Contacts without children cost nothing.
Opportunities (deal and project cards) have no per-contact list in GHL's API: each mapped card
costs one `GET /opportunities/{id}` (404: deleted in GHL).
Children pending for longer than an hour are store rows with no GHL object (orphans).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ghlsync.engine.flows.to_ghl._records import same
from ghlsync.engine.state._syncstate import mapped_with_state
from ghlsync.store._tables_sync import id_map, sync_state
from ghlsync.store._tables_twoway import ghl_records

__all__ = [
    "CHILD_KINDS",
    "Child",
    "ChildView",
    "changed_child_fields",
    "list_path",
    "load_children",
]

CHILD_KINDS = ("task", "note", "appointment", "opportunity")

# What ghlsync writes and GHL shows back unchanged, per kind.
_COMPARED = {
    "task": ("title", "body", "dueDate", "completed"),
    "note": ("body",),
    "appointment": ("title", "startTime", "endTime", "appointmentStatus"),
    "opportunity": ("pipelineStageId", "status", "monetaryValue"),
}
_LIST_KEYS = {"task": ("tasks",), "note": ("notes",), "appointment": ("events", "appointments")}


@dataclass(frozen=True, slots=True)
class Child:
    """One confirmed child mapping: its kind, DripJobs and GHL ids, contact, last write."""

    kind: str
    source_id: str
    ghl_id: str
    contact_id: str
    body: Mapping[str, Any]


@dataclass(slots=True)
class ChildView:
    """Mapped children grouped by (GHL contact id, kind), and stale pending ones."""

    groups: dict[tuple[str, str], list[Child]] = field(default_factory=dict)
    orphans: list[tuple[str, str]] = field(default_factory=list)  # (kind, DripJobs id)
    seen_in_ghl: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def load_children(
    engine: sa.Engine, location_id: str, *, stale_after: float, now: float
) -> ChildView:
    """The location's child mappings (see the module docstring)."""
    view = ChildView()
    query = mapped_with_state(
        id_map.c.entity_type,
        id_map.c.source_id,
        id_map.c.ghl_id,
        id_map.c.state,
        id_map.c.pending_since,
        sync_state.c.snapshot,
    ).where(id_map.c.location_id == location_id, id_map.c.entity_type.in_(CHILD_KINDS))
    with engine.connect() as conn:
        for r in conn.execute(query):
            if r.state != "confirmed" or not r.ghl_id:
                if (r.pending_since or now) < now - stale_after:
                    view.orphans.append((r.entity_type, r.source_id))
                continue
            snapshot = json.loads(r.snapshot) if r.snapshot else {}
            contact = str(snapshot.get("contact_id") or "")
            child = Child(r.entity_type, r.source_id, r.ghl_id, contact, snapshot.get("body", {}))
            view.groups.setdefault((contact, r.entity_type), []).append(child)
        view.seen_in_ghl = _seen_in_ghl(conn, location_id)
    return view


def _seen_in_ghl(conn: sa.Connection, location_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """What GHL's webhooks (or an earlier repair) told us each child holds: not drift."""
    t = ghl_records.c
    rows = conn.execute(
        sa.select(t.entity_type, t.ghl_id, t.fields).where(
            t.location_id == location_id, t.entity_type.in_(CHILD_KINDS)
        )
    )
    return {(r.entity_type, r.ghl_id): json.loads(r.fields or "{}") for r in rows}


def list_path(contact_id: str, kind: str) -> str:
    """The contact's list of children of `kind`."""
    return f"/contacts/{contact_id}/{kind}s"


def listed(answer: Any, kind: str) -> dict[str, Mapping[str, Any]]:
    """The records of a list answer, by id."""
    if not isinstance(answer, Mapping):
        return {}
    for key in _LIST_KEYS[kind]:
        items = answer.get(key)
        if isinstance(items, list):
            return {str(i["id"]): i for i in items if isinstance(i, Mapping) and i.get("id")}
    return {}


def changed_child_fields(
    child: Child, record: Mapping[str, Any], known: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The fields we wrote whose value in GHL differs now and that GHL did not tell us about
    (`known`: the GHL side's record): {field: {ours, ghl}}."""
    return {
        name: {"ours": child.body[name], "ghl": record.get(name)}
        for name in _COMPARED[child.kind]
        if name in child.body
        and not same(child.body[name], record.get(name))
        and not (name in known and same(known[name], record.get(name)))
    }
