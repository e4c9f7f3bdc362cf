"""Reading GHL answers: ids of created objects, and whether a found record matches a body."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any


def answer_id(answer: Any, *wrappers: str) -> str | None:
    """The id in a create answer: `{"task": {"id": ...}}`, or `{"id": ...}` at the top."""
    if not isinstance(answer, Mapping):
        return None
    for name in wrappers:
        inner = answer.get(name)
        if isinstance(inner, Mapping) and isinstance(inner.get("id"), str):
            return str(inner["id"])
    value = answer.get("id")
    return value if isinstance(value, str) else None


def records(answer: Any, *names: str) -> list[Mapping[str, Any]]:
    """The list of records in a list answer (`{"tasks": [...]}`), tolerating any of `names`."""
    if not isinstance(answer, Mapping):
        return []
    for name in names:
        items = answer.get(name)
        if isinstance(items, list):
            return [i for i in items if isinstance(i, Mapping)]
        if isinstance(items, Mapping):
            return [items]
    return []


def as_datetime(value: Any) -> datetime | None:
    """A date-time string as a datetime (aware when it carries an offset), else None."""
    if not isinstance(value, str) or len(value) < 16:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def same_instant(a: datetime, b: datetime) -> bool:
    """Equal instants; a naive side (GHL answers "2021-07-16 11:00:00" for appointments) is
    taken as UTC wall time or as the other side's own wall time, whichever matches."""
    if (a.tzinfo is None) == (b.tzinfo is None):
        return a == b
    aware, naive = (a, b) if b.tzinfo is None else (b, a)
    as_utc = aware.astimezone(UTC).replace(tzinfo=None)
    return naive in (as_utc, aware.replace(tzinfo=None))


def same(ours: Any, theirs: Any) -> bool:
    """Do two values mean the same: equal instants, emails equal ignoring case, or equal."""
    if ours == theirs:
        return True
    a, b = as_datetime(ours), as_datetime(theirs)
    if a is not None and b is not None:
        return same_instant(a, b)
    if isinstance(ours, str) and isinstance(theirs, str):
        return ours.strip().lower() == theirs.strip().lower() and "@" in ours
    return False


def mismatched(body: Mapping[str, Any], record: Mapping[str, Any], keys: Iterable[str]) -> set[str]:
    """Keys of `body` (among `keys`) whose value the found GHL record does not hold."""
    return {k for k in keys if k in body and not same(body[k], record.get(k))}


def matches(record: Mapping[str, Any], body: Mapping[str, Any], keys: Iterable[str]) -> bool:
    """True when `record` holds every one of `keys` as `body` has it."""
    return all(same(body.get(k), record.get(k)) for k in keys)
