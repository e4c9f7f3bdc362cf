"""Comparing one GHL contact with what ghlsync last wrote to it."""

from __future__ import annotations

from typing import Any

__all__ = ["changed_fields", "contact_keys"]

# Fields GHL normalises on its side: compared case-insensitively.
_FOLDED = {"email"}


def changed_fields(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields we wrote whose value in GHL is different now: {field: {ours, ghl}}."""
    changes: dict[str, dict[str, Any]] = {}
    for name, value in ours.items():
        if name not in _COMPARED:
            continue
        have = theirs.get(name)
        if _norm(name, have) != _norm(name, value):
            changes[name] = {"ours": value, "ghl": have}
    return changes


# Top-level contact fields GHL returns as written (custom fields and tags have their own rules).
_COMPARED = {
    "firstName",
    "lastName",
    "email",
    "phone",
    "address1",
    "city",
    "state",
    "postalCode",
    "source",
    "companyName",
    "website",
    "timezone",
    "country",
}


def _norm(name: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    text = str(value).strip()
    return text.lower() if name in _FOLDED else text


def contact_keys(contact: dict[str, Any]) -> list[tuple[str, str]]:
    """The keys one person is found by: ("email", lower-cased), ("phone", E.164)."""
    keys = []
    email = str(contact.get("email") or "").strip().lower()
    phone = str(contact.get("phone") or "").strip()
    if email:
        keys.append(("email", email))
    if phone:
        keys.append(("phone", phone))
    return keys
