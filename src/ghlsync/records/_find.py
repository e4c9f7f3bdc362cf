"""Who is QUERY? A DripJobs customer id, a GHL contact id, an email, a phone or a name, found
in the store (id map, sync snapshots, GHL records seen by two-way sync, the queue).

Emails are compared lower-cased and phones in E.164 (read as the mapping reads them, in
`defaults.phone_region`), so "(512) 201-1001" finds "+15122011001". Every DripJobs customer
that matches is a separate person: one email on two DripJobs customers gives two matches,
listed, never guessed. A GHL contact ghlsync knows only from GHL's side (two-way sync) is a
match of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ghlsync.mapping._transforms import Context, TransformFailed, phone_e164
from ghlsync.store._tables_engine import dead_letters, work_items
from ghlsync.store._tables_sync import id_map, sync_state

__all__ = ["Person", "find_people"]

CONTACT = "contact"
_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True, slots=True, order=True)
class Person:
    """One match: a DripJobs customer (and its GHL contact, once synced), or a GHL contact
    known only from GHL's side (`source_id` None)."""

    location_id: str
    source_id: str | None
    ghl_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "location_id": self.location_id,
            "dripjobs_id": self.source_id,
            "ghl_contact_id": self.ghl_id,
        }


def find_people(conn: sa.Connection, query: str, *, phone_region: str = "US") -> list[Person]:
    """Everyone QUERY may mean, sorted; empty when the store knows no one by it."""
    text = query.strip()
    if not text:
        return []
    keys: set[tuple[str, str]] = set()  # (location, DripJobs id)
    ghl_only: set[tuple[str, str]] = set()  # (location, GHL id)
    keys |= _by_source_id(conn, text)
    keys |= _mapped_to(conn, text)
    ghl_only |= _ghl_records_by_id(conn, text)
    email = text.lower() if "@" in text else None
    phone = _e164(text, phone_region) if email is None else None
    for field, value in (("email", email), ("phone", phone)):
        if value:
            keys |= _by_snapshot(conn, field, value)
            keys |= _by_queue(conn, field, value, phone_region)
            ghl_only |= _ghl_records_by_field(conn, field, value)
    if email:
        keys |= _by_source_id(conn, f"email:{email}")
    if phone:  # a backfilled row without customer id is keyed by its phone's digits
        digits = _DIGITS.sub("", phone)
        keys |= _by_source_id(conn, f"phone:{digits}") | _by_source_id(conn, f"phone:{digits[1:]}")
    words = _name_words(text) if email is None and not keys and not ghl_only else []
    if words:
        keys |= _by_snapshot_name(conn, words) | _by_queue_name(conn, words)
        ghl_only |= _ghl_records_by_name(conn, words)
    return _people(conn, keys, ghl_only)


# -- by name ---------------------------------------------------------------------------------
# A query with letters that is no id, email or phone is a name: every word of it must be in the
# person's name (case-insensitive; "ada", "Lovelace", "ada love" all find Ada Lovelace).
# Candidates are narrowed in SQL by the longest word, then checked here; at most
# `NAME_MATCHES` people are listed.
NAME_MATCHES = 50
_WORD = re.compile(r"[^\W\d_][\w'.-]*")
_NAME_KEYS = {
    "ghl": ("firstName", "lastName", "name", "contactName"),
    "queue": ("first_name", "last_name", "name", "customer_name"),
}


def _name_words(text: str) -> list[str]:
    words = _WORD.findall(text.casefold())
    return words if words and len(" ".join(words)) >= 2 else []


def _named(values: dict[str, Any], keys: tuple[str, ...], words: list[str]) -> bool:
    name = " ".join(str(values.get(key) or "") for key in keys).casefold()
    return all(word in name for word in words)


def _has_longest(column: Any, words: list[str]) -> Any:
    """SQL: the column holds the longest word (as typed, or JSON-escaped when not ASCII)."""
    word = max(words, key=len)
    lowered = sa.func.lower(column)
    return sa.or_(lowered.contains(word), lowered.contains(json.dumps(word)[1:-1]))


def _by_snapshot_name(conn: sa.Connection, words: list[str]) -> set[tuple[str, str]]:
    s = sync_state.c
    query = sa.select(s.location_id, s.source_id, s.snapshot).where(
        s.entity_type == CONTACT,
        s.side == "ghl",
        _has_longest(s.snapshot, words),
    )
    found: set[tuple[str, str]] = set()
    for row in conn.execute(query):
        if _named(_json(row.snapshot).get("body") or {}, _NAME_KEYS["ghl"], words):
            found.add((row.location_id, row.source_id))
            if len(found) >= NAME_MATCHES:
                break
    return found


def _by_queue_name(conn: sa.Connection, words: list[str]) -> set[tuple[str, str]]:
    w = work_items.c
    query = sa.select(w.location_id, w.source_id, w.payload).where(
        w.entity_type == CONTACT,
        w.status != "done",
        _has_longest(w.payload, words),
    )
    found: set[tuple[str, str]] = set()
    for row in conn.execute(query):
        if _named(_json(row.payload), _NAME_KEYS["queue"], words):
            found.add((row.location_id, row.source_id))
            if len(found) >= NAME_MATCHES:
                break
    return found


def _ghl_records_by_name(conn: sa.Connection, words: list[str]) -> set[tuple[str, str]]:
    table = _ghl_records(conn)
    if table is None:
        return set()
    query = sa.select(table.c.location_id, table.c.ghl_id, table.c.fields).where(
        table.c.entity_type == CONTACT,
        _has_longest(table.c.fields, words),
    )
    found: set[tuple[str, str]] = set()
    for row in conn.execute(query):
        if _named(_json(row.fields), _NAME_KEYS["ghl"], words):
            found.add((row.location_id, row.ghl_id))
            if len(found) >= NAME_MATCHES:
                break
    return found


def _e164(text: str, region: str) -> str | None:
    if not _DIGITS.sub("", text) or len(_DIGITS.sub("", text)) < 7:
        return None
    try:
        return str(phone_e164(text, Context(phone_region=region)))
    except TransformFailed:
        return None


def _by_source_id(conn: sa.Connection, source_id: str) -> set[tuple[str, str]]:
    found = conn.execute(
        sa.select(id_map.c.location_id).where(
            id_map.c.entity_type == CONTACT, id_map.c.source_id == source_id
        )
    ).scalars()
    queued = conn.execute(
        sa.select(work_items.c.location_id).where(
            work_items.c.entity_type == CONTACT, work_items.c.source_id == source_id
        )
    ).scalars()
    parked = conn.execute(  # e.g. a backfilled customer parked before it was queued
        sa.select(dead_letters.c.location_id).where(
            dead_letters.c.entity_type == CONTACT, dead_letters.c.source_id == source_id
        )
    ).scalars()
    return {(loc, source_id) for loc in [*found, *queued, *parked]}


def _mapped_to(conn: sa.Connection, ghl_id: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        sa.select(id_map.c.location_id, id_map.c.source_id).where(
            id_map.c.entity_type == CONTACT, id_map.c.ghl_id == ghl_id
        )
    )
    return {(r.location_id, r.source_id) for r in rows}


def _by_snapshot(conn: sa.Connection, field: str, value: str) -> set[tuple[str, str]]:
    """Customers whose last-synced contact body has this email or phone."""
    rows = conn.execute(
        sa.select(sync_state.c.location_id, sync_state.c.source_id, sync_state.c.snapshot).where(
            sync_state.c.entity_type == CONTACT,
            sync_state.c.side == "ghl",
            sync_state.c.snapshot.contains(json.dumps(value)),
        )
    )
    return {
        (r.location_id, r.source_id)
        for r in rows
        if str(_json(r.snapshot).get("body", {}).get(field) or "").lower() == value
    }


def _by_queue(conn: sa.Connection, field: str, value: str, region: str) -> set[tuple[str, str]]:
    """Customers still in the queue (never synced) whose payload has this email or phone."""
    needle = value if field == "email" else _DIGITS.sub("", value)[-7:]
    rows = conn.execute(
        sa.select(work_items.c.location_id, work_items.c.source_id, work_items.c.payload).where(
            work_items.c.entity_type == CONTACT,
            work_items.c.status != "done",
            sa.func.lower(work_items.c.payload).contains(needle),
        )
    )
    found: set[tuple[str, str]] = set()
    for row in rows:
        raw = _json(row.payload).get(field)
        if raw is None:
            continue
        have = str(raw).strip().lower() if field == "email" else _e164(str(raw), region)
        if have == value:
            found.add((row.location_id, row.source_id))
    return found


def _ghl_records_by_id(conn: sa.Connection, ghl_id: str) -> set[tuple[str, str]]:
    table = _ghl_records(conn)
    if table is None:
        return set()
    rows = conn.execute(
        sa.select(table.c.location_id).where(
            table.c.entity_type == CONTACT, table.c.ghl_id == ghl_id
        )
    ).scalars()
    return {(loc, ghl_id) for loc in rows}


def _ghl_records_by_field(conn: sa.Connection, field: str, value: str) -> set[tuple[str, str]]:
    table = _ghl_records(conn)
    if table is None:
        return set()
    rows = conn.execute(
        sa.select(table.c.location_id, table.c.ghl_id, table.c.fields).where(
            table.c.entity_type == CONTACT,
            sa.func.lower(table.c.fields).contains(json.dumps(value)[1:-1]),
        )
    )
    return {
        (r.location_id, r.ghl_id)
        for r in rows
        if str(_json(r.fields).get(field) or "").lower() == value
    }


def _people(
    conn: sa.Connection, keys: set[tuple[str, str]], ghl_only: set[tuple[str, str]]
) -> list[Person]:
    people: set[Person] = set()
    linked: set[tuple[str, str]] = set()
    for location, source in keys:
        ghl_id = conn.execute(
            sa.select(id_map.c.ghl_id).where(
                id_map.c.location_id == location,
                id_map.c.entity_type == CONTACT,
                id_map.c.source_id == source,
            )
        ).scalar()
        people.add(Person(location, source, ghl_id))
        if ghl_id:
            linked.add((location, ghl_id))
    people |= {Person(loc, None, gid) for loc, gid in ghl_only if (loc, gid) not in linked}
    return sorted(people, key=lambda p: (p.location_id, p.source_id or "", p.ghl_id or ""))


def _ghl_records(conn: sa.Connection) -> sa.Table | None:
    """The two-way sync's GHL record table, when this installation has it."""
    try:
        from ghlsync.store._tables_twoway import ghl_records
    except ImportError:  # pragma: no cover - two-way sync not installed
        return None
    return ghl_records


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
