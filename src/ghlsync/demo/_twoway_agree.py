"""Do both emulators agree? GHL's contacts, appointments and deal tags against DripJobs'.

Records are paired by email (both sides match people that way). Every problem is a line a
person can act on; an empty list means GHL and DripJobs hold the same people, the same
scheduled appointment times and the same deal stages, with nobody twice.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

# The stage Create Appointment Request opens a deal in; no trigger reports it, so GHL has no tag.
_SILENT_STAGE = "appointment requested"


def agreement_problems(ghl: dict[str, Any], dripjobs: dict[str, Any]) -> list[str]:
    """Every way GHL (`/_sandbox/state` location) and DripJobs (`/state`) disagree."""
    contacts = _by_email(ghl["contacts"], "email")
    customers = _by_email(dripjobs["customers"], "email")
    problems = [
        *_twice("GHL contact", ghl["contacts"], "email"),
        *_twice("DripJobs customer", dripjobs["customers"], "email"),
    ]
    for email in sorted(set(contacts) | set(customers)):
        contact, customer = contacts.get(email), customers.get(email)
        if contact is None or customer is None:
            side = "GHL" if contact is None else "DripJobs"
            problems.append(f"{email}: missing in {side}")
            continue
        problems += _person(email, contact, customer)
        problems += _appointments(email, contact, customer, ghl, dripjobs)
        problems += _deal(email, contact, customer, dripjobs)
    return problems


def duplicate_count(ghl: dict[str, Any]) -> int:
    """GHL records that exist twice: contacts per email, appointments per contact and time."""
    emails = Counter(_email(c.get("email")) for c in ghl["contacts"] if c.get("email"))
    slots = Counter(
        (a.get("contactId"), _instant(a.get("startTime", "")))
        for a in ghl["appointments"]
        if _open(a)
    )
    return sum(n - 1 for n in emails.values()) + sum(n - 1 for n in slots.values())


def _person(email: str, contact: dict[str, Any], customer: dict[str, Any]) -> list[str]:
    pairs = (("firstName", "first_name"), ("lastName", "last_name"), ("phone", "phone"))
    problems = []
    for ghl_name, dj_name in pairs:
        held, other = contact.get(ghl_name) or "", customer.get(dj_name) or ""
        if ghl_name == "phone":
            held, other = _digits(held), _digits(other)
        if held != other:
            problems.append(f"{email}: {ghl_name} {held!r} in GHL, {dj_name} {other!r} in DripJobs")
    return problems


def _appointments(
    email: str,
    contact: dict[str, Any],
    customer: dict[str, Any],
    ghl: dict[str, Any],
    dripjobs: dict[str, Any],
) -> list[str]:
    in_ghl = sorted(
        _instant(a.get("startTime", ""))
        for a in ghl["appointments"]
        if a.get("contactId") == contact["id"] and _open(a)
    )
    in_dj = sorted(
        _instant(a["start"])
        for a in dripjobs["appointments"]
        if a["customer_id"] == customer["id"] and a["status"] == "scheduled"
    )
    if in_ghl == in_dj:
        return []
    return [f"{email}: appointments at {_times(in_ghl)} in GHL, {_times(in_dj)} in DripJobs"]


def _deal(
    email: str, contact: dict[str, Any], customer: dict[str, Any], dripjobs: dict[str, Any]
) -> list[str]:
    deals = [d for d in dripjobs["deals"] if d["customer_id"] == customer["id"]]
    latest = max(deals, key=lambda d: int(d["id"].rsplit("_", 1)[-1]), default=None)
    stage = latest["stage"].strip().lower() if latest else None
    tags = [t[len("deal:") :] for t in contact.get("tags") or [] if t.startswith("deal:")]
    if stage in (None, _SILENT_STAGE) and not tags:
        return []
    if tags == [stage]:
        return []
    return [f"{email}: deal tags {tags} in GHL, stage {stage!r} in DripJobs"]


def _by_email(records: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for record in records:
        email = _email(record.get(key))
        if email:
            grouped.setdefault(email, record)
    return grouped


def _twice(what: str, records: list[dict[str, Any]], key: str) -> list[str]:
    seen: dict[str, int] = defaultdict(int)
    for record in records:
        if email := _email(record.get(key)):
            seen[email] += 1
    return [f"{email}: {n} x {what}" for email, n in sorted(seen.items()) if n > 1]


def _email(value: object) -> str:
    return str(value or "").strip().lower()


def _digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def _open(appointment: dict[str, Any]) -> bool:
    return str(appointment.get("appointmentStatus", "")).lower() not in ("cancelled", "canceled")


def _instant(iso: str) -> float:
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _times(instants: list[float]) -> str:
    shown = [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") for t in instants]
    return "[" + ", ".join(shown) + "]"
