"""Reading GHL answers: ids of created objects, and whether a found record matches a body."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
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


def as_instant(value: Any) -> datetime | None:
    """A date-time string as an aware instant (GHL answers "2021-07-16 11:00:00" or ISO)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed


def same(ours: Any, theirs: Any) -> bool:
    """Do two values mean the same: equal instants, emails equal ignoring case, or equal."""
    if ours == theirs:
        return True
    a, b = as_instant(ours), as_instant(theirs)
    if a is not None and b is not None:
        return a == b
    if isinstance(ours, str) and isinstance(theirs, str):
        return ours.strip().lower() == theirs.strip().lower() and "@" in ours
    return False


def mismatched(body: Mapping[str, Any], record: Mapping[str, Any], keys: Iterable[str]) -> set[str]:
    """Keys of `body` (among `keys`) whose value the found GHL record does not hold."""
    return {k for k in keys if k in body and not same(body[k], record.get(k))}


def matches(record: Mapping[str, Any], body: Mapping[str, Any], keys: Iterable[str]) -> bool:
    """True when `record` holds every one of `keys` as `body` has it."""
    return all(same(body.get(k), record.get(k)) for k in keys)
