"""Comparing field values across the two sides: the same value in two spellings is equal.

Emails compare lower-cased, phones by their last ten digits, times by the instant, tags as a
lower-cased set, everything else as trimmed text; empty and missing are the same.
"""

from __future__ import annotations

from typing import Any

from ghlsync.engine.flows.to_dripjobs._events import parse_time
from ghlsync.engine.outbox._store import normal_email, normal_phone

TIME_FIELDS = frozenset({"startTime", "endTime", "dateUpdated", "dueDate"})


def norm(field: str, value: Any) -> Any:
    """The comparable form of one field's value (None for empty)."""
    if value is None or value == "" or value == []:
        return None
    if field == "email":
        return normal_email(value)
    if field == "phone":
        return normal_phone(value)
    if field in TIME_FIELDS:
        stamp = parse_time(value)
        return round(stamp, 3) if stamp is not None else str(value)
    if field == "tags" and isinstance(value, list):
        return tuple(sorted({str(t).strip().lower() for t in value if str(t).strip()})) or None
    return str(value).strip() or None


def same(field: str, left: Any, right: Any) -> bool:
    """True when two values of `field` mean the same."""
    return bool(norm(field, left) == norm(field, right))
