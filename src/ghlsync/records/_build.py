"""One person's record as both systems see them, from the store (GHL only with `live`).

Sections (all JSON-ready): `person` (ids, links), `fields` (per GHL contact field: the value
DripJobs last sent, the value GHL was last seen to hold, the owner rule, when it was synced),
`tags`, `children` (tasks, notes, appointments and opportunities — deal/project cards — with
their state on each side), `pending` (queued work and write-backs, with their timers, and the
person's waiting recipe runs: `direction` "recipe", due when their `after.wait` ends),
`dead_letters`, and `timeline` (every change that went through ghlsync in either direction,
newest first).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ghlsync.mapping import AppConfig
from ghlsync.records._find import Person
from ghlsync.store._tables_engine import audit_log, dead_letters, work_items
from ghlsync.store._tables_sync import id_map, sync_state

__all__ = ["build_record"]

CHILDREN = ("task", "note", "appointment", "opportunity")
RECIPE_WORK = "recipe"  # the work rows of recipe runs (`ghlsync.engine.flows.recipes._schedule`)
TIMELINE_LIMIT = 200


def build_record(conn: sa.Connection, person: Person, config: AppConfig) -> dict[str, Any]:
    """The record of one person (see the module docstring)."""
    loc = person.location_id
    row = _id_row(conn, loc, "contact", person.source_id)
    state = _state(conn, loc, "contact", person.source_id)
    ghl = _ghl_record(conn, loc, "contact", person.ghl_id)
    children = _children(conn, loc, person)
    entities = [("contact", person.source_id)] if person.source_id else []
    entities += [(c["type"], c["dripjobs_id"]) for c in children if c["dripjobs_id"]]
    ghl_ids = [i for i in [person.ghl_id, *(c["ghl_id"] for c in children)] if i]
    return {
        "person": _person(conn, person, row, state),
        "fields": _fields(config, state, ghl),
        "tags": _tags(state, ghl),
        "children": children,
        "pending": _pending(conn, loc, entities, ghl_ids) + _recipe_runs(conn, loc, person),
        "dead_letters": _dead(conn, loc, entities, ghl_ids),
        "timeline": _timeline(conn, loc, entities, ghl_ids),
    }


# ------------------------------------------------------------------------------ reading


def _id_row(conn: sa.Connection, loc: str, kind: str, source_id: str | None) -> Any:
    if source_id is None:
        return None
    return conn.execute(
        sa.select(id_map).where(
            id_map.c.location_id == loc,
            id_map.c.entity_type == kind,
            id_map.c.source_id == source_id,
        )
    ).first()


def _state(conn: sa.Connection, loc: str, kind: str, source_id: str | None) -> dict[str, Any]:
    """Per side (`ghl`, `dripjobs`): hash, source time, snapshot, synced_at."""
    if source_id is None:
        return {}
    rows = conn.execute(
        sa.select(sync_state).where(
            sync_state.c.location_id == loc,
            sync_state.c.entity_type == kind,
            sync_state.c.source_id == source_id,
        )
    )
    return {
        r.side: {
            "hash": r.content_hash,
            "source_updated_at": r.source_updated_at,
            "snapshot": _json(r.snapshot),
            "synced_at": r.synced_at,
        }
        for r in rows
    }


def _ghl_record(conn: sa.Connection, loc: str, kind: str, ghl_id: str | None) -> dict[str, Any]:
    """What two-way sync last saw GHL hold for this object (empty without two-way sync)."""
    table = _twoway("ghl_records")
    if table is None or not ghl_id:
        return {}
    row = conn.execute(
        sa.select(table).where(
            table.c.location_id == loc, table.c.entity_type == kind, table.c.ghl_id == ghl_id
        )
    ).first()
    if row is None:
        return {}
    return {
        "fields": _json(row.fields),
        "pending": _json(row.pending),
        "version": row.version,
        "deleted_at": row.deleted_at,
        "updated_at": row.updated_at,
    }


# ----------------------------------------------------------------------------- sections


def _person(conn: sa.Connection, person: Person, row: Any, state: dict[str, Any]) -> dict[str, Any]:
    also: list[str] = []
    if person.ghl_id:
        also = [
            s
            for s in conn.execute(
                sa.select(id_map.c.source_id).where(
                    id_map.c.location_id == person.location_id,
                    id_map.c.entity_type == "contact",
                    id_map.c.ghl_id == person.ghl_id,
                )
            ).scalars()
            if s != person.source_id
        ]
    body = state.get("ghl", {}).get("snapshot", {}).get("body", {})
    name = " ".join(str(body[k]) for k in ("firstName", "lastName") if body.get(k))
    return {
        **person.to_dict(),
        "name": name or None,
        "email": body.get("email"),
        "phone": body.get("phone"),
        "link": None if row is None else row.state,  # pending | confirmed | None (not synced)
        "linked_at": None if row is None else row.updated_at,
        "same_ghl_contact_as": sorted(also),
        "deleted": state.get("ghl", {}).get("hash") == "deleted",
    }


def _fields(config: AppConfig, state: dict[str, Any], ghl: dict[str, Any]) -> list[dict[str, Any]]:
    """Per GHL contact field: DripJobs' value, GHL's, the owner rule and the sync time."""
    ours = state.get("ghl", {})
    snapshot = ours.get("snapshot", {})
    body: dict[str, Any] = snapshot.get("body", {})
    stamps: dict[str, Any] = snapshot.get("stamps", {}) or {}
    seen: dict[str, Any] = ghl.get("fields", {})
    pending: dict[str, Any] = ghl.get("pending", {})
    two_way = {rule.source for rule in config.writeback.fields.contact}
    names = sorted(set(body) | (set(seen) & (two_way | set(body))) | set(pending))
    rows = []
    for name in names:
        rows.append(
            {
                "field": name,
                "dripjobs": body.get(name),
                "ghl": seen.get(name),
                "ghl_pending": pending.get(name),
                "owner": config.writeback.owner(name) if name in two_way else "dripjobs",
                "two_way": name in two_way,
                "source_updated_at": stamps.get(f"body:{name}", stamps.get("*")),
                "synced_at": ours.get("synced_at"),
            }
        )
    for key, value in sorted((snapshot.get("custom_fields") or {}).items()):
        rows.append(
            {
                "field": f"customFields.{key}",
                "dripjobs": value,
                "ghl": None,
                "ghl_pending": None,
                "owner": "dripjobs",
                "two_way": False,
                "source_updated_at": stamps.get(f"field:{key}", stamps.get("*")),
                "synced_at": ours.get("synced_at"),
            }
        )
    return rows


def _tags(state: dict[str, Any], ghl: dict[str, Any]) -> dict[str, Any]:
    known = state.get("ghl", {}).get("snapshot", {}).get("tags", [])
    seen = ghl.get("fields", {}).get("tags")
    return {"known_in_ghl": sorted(known), "ghl_seen": sorted(seen) if seen else None}


def _children(conn: sa.Connection, loc: str, person: Person) -> list[dict[str, Any]]:
    """Tasks, notes and appointments of the person: synced ones (by their GHL contact) and
    those still in the queue (by their DripJobs customer id)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if person.ghl_id:
        rows = conn.execute(
            sa.select(sync_state).where(
                sync_state.c.location_id == loc,
                sync_state.c.entity_type.in_(CHILDREN),
                sync_state.c.side == "ghl",
                sync_state.c.snapshot.contains(json.dumps(person.ghl_id)),
            )
        )
        for r in rows:
            snap = _json(r.snapshot)
            if snap.get("contact_id") == person.ghl_id:
                found[(r.entity_type, r.source_id)] = _child(conn, loc, r, snap)
    if person.source_id:
        for kind, source_id in _queued_children(conn, loc, person.source_id):
            found.setdefault((kind, source_id), _queued_child(conn, loc, kind, source_id))
    return sorted(found.values(), key=lambda c: (c["type"], str(c["dripjobs_id"])))


def _child(conn: sa.Connection, loc: str, r: Any, snap: dict[str, Any]) -> dict[str, Any]:
    row = _id_row(conn, loc, r.entity_type, r.source_id)
    ghl_id = None if row is None else row.ghl_id
    ghl = _ghl_record(conn, loc, r.entity_type, ghl_id)
    return {
        "type": r.entity_type,
        "dripjobs_id": r.source_id,
        "ghl_id": ghl_id,
        "state": "deleted" if r.content_hash == "deleted" else "synced",
        "dripjobs": snap.get("body", {}),
        "ghl": ghl.get("fields") or None,
        "ghl_deleted": bool(ghl.get("deleted_at")),
        "synced_at": r.synced_at,
    }


def _queued_children(conn: sa.Connection, loc: str, customer: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        sa.select(work_items.c.entity_type, work_items.c.source_id, work_items.c.payload).where(
            work_items.c.location_id == loc,
            work_items.c.entity_type.in_(CHILDREN),
            work_items.c.status != "done",
            work_items.c.payload.contains(customer),
        )
    )
    return [
        (r.entity_type, r.source_id)
        for r in rows
        if str(_json(r.payload).get("customer_id")) == customer
    ]


def _queued_child(conn: sa.Connection, loc: str, kind: str, source_id: str) -> dict[str, Any]:
    row = _id_row(conn, loc, kind, source_id)
    return {
        "type": kind,
        "dripjobs_id": source_id,
        "ghl_id": None if row is None else row.ghl_id,
        "state": "queued",
        "dripjobs": None,
        "ghl": None,
        "ghl_deleted": False,
        "synced_at": None,
    }


def _pending(
    conn: sa.Connection, loc: str, entities: list[tuple[str, str]], ghl_ids: list[str]
) -> list[dict[str, Any]]:
    """Queued or running work for the person (with its timer), and write-backs not sent."""
    items: list[dict[str, Any]] = []
    for r in _work_rows(conn, loc, entities, ghl_ids):
        if r.status == "done":
            continue
        items.append(
            {
                "direction": _direction(r.entity_type),
                "entity": f"{r.entity_type}:{r.source_id}",
                "event": r.event,
                "status": r.status,
                "attempts": r.attempts,
                "due_at": r.available_at,
                "lease_expires_at": r.lease_expires_at,
                "last_error": r.last_error,
            }
        )
    outbox = _twoway("writeback_outbox")
    if outbox is not None and ghl_ids:
        rows = conn.execute(
            sa.select(outbox).where(
                outbox.c.location_id == loc,
                outbox.c.ghl_id.in_(ghl_ids),
                outbox.c.status.in_(("pending", "sending")),
            )
        )
        for r in rows:
            items.append(
                {
                    "direction": "ghl→dripjobs",
                    "entity": f"writeback:{r.action}",
                    "event": r.action,
                    "status": r.status,
                    "attempts": r.attempts,
                    "due_at": r.available_at,
                    "lease_expires_at": r.lease_expires_at,
                    "last_error": r.last_error,
                }
            )
    return items


def _recipe_runs(conn: sa.Connection, loc: str, person: Person) -> list[dict[str, Any]]:
    """The person's recipe runs not done yet: a timer (`after.wait`) shows when it is due."""
    keys = [k for k in (person.source_id, person.ghl_id) if k]
    if not keys:
        return []
    w = work_items.c
    rows = conn.execute(
        sa.select(work_items).where(
            w.location_id == loc,
            w.entity_type == RECIPE_WORK,
            w.status != "done",
            sa.or_(*(w.payload.contains(k) for k in keys)),
        )
    )
    items = []
    for r in rows:
        payload = _json(r.payload)
        mine = (person.source_id and payload.get("customer_id") == person.source_id) or (
            person.ghl_id and payload.get("ghl_contact_id") == person.ghl_id
        )
        if not mine:
            continue
        items.append(
            {
                "direction": "recipe",
                "entity": f"recipe:{payload.get('recipe') or r.source_id}",
                "event": r.event,
                "status": r.status,
                "attempts": r.attempts,
                "due_at": r.available_at,
                "lease_expires_at": r.lease_expires_at,
                "last_error": r.last_error,
            }
        )
    return items


def _work_rows(
    conn: sa.Connection, loc: str, entities: list[tuple[str, str]], ghl_ids: list[str]
) -> list[Any]:
    keys = [*entities, *((f"ghl_{k}", g) for k in ("contact", *CHILDREN) for g in ghl_ids)]
    if not keys:
        return []
    return list(
        conn.execute(
            sa.select(work_items).where(
                work_items.c.location_id == loc,
                work_items.c.source_id.in_({s for _, s in keys}),
            )
        )
    )


def _dead(
    conn: sa.Connection, loc: str, entities: list[tuple[str, str]], ghl_ids: list[str]
) -> list[dict[str, Any]]:
    sources = {s for _, s in entities} | set(ghl_ids)
    if not sources:
        return []
    rows = conn.execute(
        sa.select(dead_letters)
        .where(dead_letters.c.location_id == loc, dead_letters.c.source_id.in_(sources))
        .order_by(dead_letters.c.created_at.desc())
    )
    return [
        {
            "id": r.id,
            "entity": f"{r.entity_type}:{r.source_id}",
            "event": r.event,
            "reason": r.reason,
            "attempts": r.attempts,
            "at": r.created_at,
            "replayed_at": r.replayed_at,
        }
        for r in rows
    ]


def _timeline(
    conn: sa.Connection, loc: str, entities: list[tuple[str, str]], ghl_ids: list[str]
) -> list[dict[str, Any]]:
    """Every change that went through ghlsync for the person, newest first."""
    sources = {s for _, s in entities} | set(ghl_ids)
    events: list[dict[str, Any]] = []
    if sources:
        rows = conn.execute(
            sa.select(audit_log)
            .where(audit_log.c.location_id == loc, audit_log.c.source_id.in_(sources))
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .limit(TIMELINE_LIMIT)
        )
        events += [
            {
                "at": r.at,
                "direction": _direction(r.entity_type),
                "entity": f"{r.entity_type}:{r.source_id}",
                "action": r.action,
                "ghl_id": r.ghl_id,
                "calls": r.calls,
                "detail": r.detail or "",
            }
            for r in rows
        ]
    events += _writebacks(conn, loc, ghl_ids) + _ghl_changes(conn, loc, ghl_ids)
    events.sort(key=lambda e: e["at"] or 0.0, reverse=True)
    return events[:TIMELINE_LIMIT]


def _writebacks(conn: sa.Connection, loc: str, ghl_ids: list[str]) -> list[dict[str, Any]]:
    outbox = _twoway("writeback_outbox")
    if outbox is None or not ghl_ids:
        return []
    rows = conn.execute(
        sa.select(outbox).where(outbox.c.location_id == loc, outbox.c.ghl_id.in_(ghl_ids))
    )
    return [
        {
            "at": r.delivered_at or r.updated_at,
            "direction": "ghl→dripjobs",
            "entity": f"{r.ghl_entity}:{r.ghl_id}",
            "action": f"writeback {r.action}: {r.status}",
            "ghl_id": r.ghl_id,
            "calls": 0,
            "detail": r.last_error or "",
        }
        for r in rows
    ]


def _ghl_changes(conn: sa.Connection, loc: str, ghl_ids: list[str]) -> list[dict[str, Any]]:
    table = _twoway("ghl_changes")
    if table is None or not ghl_ids:
        return []
    rows = conn.execute(
        sa.select(table).where(table.c.location_id == loc, table.c.ghl_id.in_(ghl_ids))
    )
    return [
        {
            "at": r.changed_at or r.recorded_at,
            "direction": "ghl only",
            "entity": f"{r.entity_type}:{r.ghl_id}",
            "action": r.event,
            "ghl_id": r.ghl_id,
            "calls": 0,
            "detail": f"{r.reason}: {r.detail}",
        }
        for r in rows
    ]


def _direction(entity_type: str) -> str:
    return "ghl→dripjobs" if entity_type.startswith("ghl_") else "dripjobs→ghl"


def _twoway(name: str) -> sa.Table | None:
    try:
        from ghlsync.store import _tables_twoway
    except ImportError:  # pragma: no cover - two-way sync not installed
        return None
    table = getattr(_tables_twoway, name, None)
    return table if isinstance(table, sa.Table) else None


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
