"""One CSV row → the delivery a webhook of the same event would have made, or a rejection.

A row goes through the configured event's own rules (`Mapper`), so a backfilled customer is
written exactly as a webhook would write it. Rows that cannot succeed (no way to key them, a
value the mapping refuses, a contact without email or phone) are rejected here, with their
row number, before anything is queued or sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ghlsync.dripjobs._csv import CsvRow
from ghlsync.mapping import MappedEntity, Mapper, MappingError, content_hash

__all__ = ["Prepared", "Rejected", "prepare"]

_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A row ready to queue: the folded payload, its entity key and what matching needs."""

    number: int
    event: str
    payload: dict[str, Any]
    entity_type: str
    source_id: str
    email: str | None
    phone: str | None
    content_hash: str
    source_updated_at: float | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that cannot be synced as it is, and why (for the dead-letter queue)."""

    number: int
    payload: dict[str, Any]
    source_id: str | None
    reason: str
    error_class: str


def prepare(row: CsvRow, event: str, mapper: Mapper, as_of: str | None) -> Prepared | Rejected:
    """Key, stamp and map one row; a `Rejected` instead of raising."""
    rule = mapper.config.events[event]
    payload: dict[str, Any] = dict(row.fields)
    if as_of and not payload.get(rule.timestamp or ""):
        # An export is a snapshot: a live change made after it must win over this row.
        payload[rule.timestamp or "updated_at"] = as_of
    if not payload.get(rule.id):
        fallback = _fallback_id(payload)
        if fallback is None:
            return _reject(row, payload, None, f"no {rule.id}, email or phone to key it by")
        payload[rule.id] = fallback
    try:
        key = mapper.entity_key(event, payload)
        mapped = mapper.map(event, payload)
        stamp = mapper.source_updated_at(event, payload)
    except MappingError as exc:
        return _reject(row, payload, payload.get(rule.id), f"cannot map it: {exc}", exc)
    entity = mapped.entities[0]
    email, phone = _contact_keys(entity)
    if entity.type == "contact" and not email and not phone:
        return _reject(
            row, payload, key.source_id, "no email or phone: GHL could not find the contact again"
        )
    return Prepared(
        number=row.number,
        event=event,
        payload=payload,
        entity_type=key.type,
        source_id=key.source_id,
        email=email,
        phone=phone,
        content_hash=content_hash(entity),
        source_updated_at=None if stamp is None else stamp.timestamp(),
    )


def _fallback_id(payload: dict[str, Any]) -> str | None:
    """A stable key for an export without customer ids (the Jobs list has none)."""
    email = str(payload.get("email") or "").strip().lower()
    if email:
        return f"email:{email}"
    digits = _DIGITS.sub("", str(payload.get("phone") or ""))
    return f"phone:{digits}" if digits else None


def _contact_keys(entity: MappedEntity) -> tuple[str | None, str | None]:
    body = entity.body
    email, phone = body.get("email"), body.get("phone")
    return (str(email) if email else None, str(phone) if phone else None)


def _reject(
    row: CsvRow,
    payload: dict[str, Any],
    source_id: str | None,
    reason: str,
    error: Exception | None = None,
) -> Rejected:
    name = type(error).__name__ if error is not None else "BackfillRowError"
    return Rejected(row.number, payload, source_id, reason, name)
