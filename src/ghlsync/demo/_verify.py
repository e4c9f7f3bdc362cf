"""Does GHL hold exactly what the events imply? Compare the sandbox's state with `Expected`.

Pure functions over JSON (`GET /_sandbox/state`) and the stream's model; each problem is one
readable line naming the customer and what differs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ghlsync.demo._send import Answer
from ghlsync.demo._stream import Expected, ExpectedContact

Record = dict[str, Any]
_MAX_ANSWER_PROBLEMS = 10


def verify_answers(answers: Sequence[Answer], sent: int) -> list[str]:
    """Every delivery got an answer, and the one the stream expects."""
    problems = [
        f"event #{a.index} {a.event}: answered {a.status}, expected {a.expected}: {a.body[:120]}"
        for a in answers
        if not a.as_expected
    ]
    if len(problems) > _MAX_ANSWER_PROBLEMS:
        more = len(problems) - _MAX_ANSWER_PROBLEMS
        problems = [*problems[:_MAX_ANSWER_PROBLEMS], f"... and {more} more unexpected answers"]
    if len(answers) != sent:
        problems.append(f"{sent} events sent but {len(answers)} answered")
    return problems


def verify_dead_letters(count: int, expected: Expected) -> list[str]:
    """As many dead letters as the stream's unmappable events."""
    if count == expected.dead_letters:
        return []
    return [f"{count} dead letters, expected {expected.dead_letters}"]


def verify_state(state: Record, expected: Expected, location_id: str) -> list[str]:
    """Problems between the sandbox location's records and the expected model."""
    location = state.get("locations", {}).get(location_id)
    if location is None:
        return [f"the sandbox has no location {location_id}"]
    by_email = _group(location["contacts"], lambda c: str(c.get("email", "")).lower())
    problems: list[str] = []
    wanted = {c.email.lower(): c for c in expected.contacts.values()}
    for email, contact in wanted.items():
        found = by_email.get(email, [])
        if len(found) != 1:
            problems.append(f"{contact.customer_id}: {len(found)} contacts with {email}, want 1")
            continue
        problems += _contact_problems(contact, found[0], location)
    extra = sorted(set(by_email) - set(wanted))
    problems += [f"unexpected contact {email or '(no email)'}" for email in extra]
    known = {r["id"] for email, found in by_email.items() if email in wanted for r in found}
    problems += _orphans(location, known)
    return problems


def _contact_problems(want: ExpectedContact, got: Record, location: Record) -> list[str]:
    who = want.customer_id
    problems = [
        f"{who}: {label} is {got.get(key)!r}, expected {value!r}"
        for label, key, value in (
            ("first name", "firstName", want.first_name),
            ("last name", "lastName", want.last_name),
            ("phone", "phone", want.phone),
        )
        if got.get(key) != value
    ]
    tags = {str(t).lower() for t in got.get("tags", [])}
    if tags != want.tags:
        problems.append(f"{who}: tags are {sorted(tags)}, expected {sorted(want.tags)}")
    mine = _children(location, got["id"])
    problems += _compare(who, "tasks", _want_tasks(want), [_task(t) for t in mine["tasks"]])
    problems += _compare(
        who, "notes", list(want.notes.values()), [n["body"] for n in mine["notes"]]
    )
    appointments = [_appointment(a) for a in mine["appointments"]]
    problems += _compare(who, "appointments", _want_appointments(want), appointments)
    return problems


def _children(location: Record, contact_id: str) -> dict[str, list[Record]]:
    return {
        kind: [r for r in location[kind] if r.get("contactId") == contact_id]
        for kind in ("tasks", "notes", "appointments")
    }


def _want_tasks(want: ExpectedContact) -> list[tuple[str, bool]]:
    return [(t.title, t.completed) for t in want.tasks.values() if not t.deleted]


def _task(record: Record) -> tuple[str, bool]:
    return (str(record.get("title")), bool(record.get("completed")))


def _want_appointments(want: ExpectedContact) -> list[tuple[str, datetime, bool]]:
    return [(a.title, _instant(a.start), a.canceled) for a in want.appointments.values()]


def _appointment(record: Record) -> tuple[str, datetime, bool]:
    cancelled = record.get("appointmentStatus") == "cancelled"
    return (str(record.get("title")), _instant(str(record.get("startTime"))), cancelled)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _compare(who: str, kind: str, want: Iterable[Any], got: Iterable[Any]) -> list[str]:
    missing, extra = Counter(want), Counter(got)
    missing.subtract(got)
    extra.subtract(want)
    lines = [f"{who}: missing {kind[:-1]} {item!r}" for item, n in missing.items() if n > 0]
    lines += [f"{who}: unexpected {kind[:-1]} {item!r}" for item, n in extra.items() if n > 0]
    return lines


def _orphans(location: Record, contact_ids: set[str]) -> list[str]:
    """Children attached to no expected contact (e.g. to a contact created twice)."""
    return [
        f"{kind[:-1]} {r.get('id')} belongs to no expected contact"
        for kind in ("tasks", "notes", "appointments")
        for r in location[kind]
        if r.get("contactId") not in contact_ids
    ]


def _group(records: Iterable[Record], key: Any) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {}
    for record in records:
        out.setdefault(key(record), []).append(record)
    return out
