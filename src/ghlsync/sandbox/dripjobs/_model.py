"""The emulated DripJobs company: customers, their leads, appointments and deals.

Only what the Zapier actions and triggers touch is kept. Every record remembers where it came
from (`origin`: "writeback" when a Zap made it, "user" when someone typed it into DripJobs), so
the counters can tell a write-back that created something from one that echoed it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The contact fields a customer holds (the Create Lead action's fields, minus the lead source
# of each lead, which DripJobs keeps per lead and on the customer's first lead).
CUSTOMER_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "city",
    "state",
    "zip",
    "lead_source",
    "notes",
    "ghl_contact_id",
)


@dataclass
class Customer:
    """A DripJobs customer (a contact); `fields` holds the CUSTOMER_FIELDS that have a value."""

    id: str
    fields: dict[str, str]
    origin: str
    updated_at: str


@dataclass
class Lead:
    """One lead entry; several leads of one customer are what a duplicate looks like here."""

    id: str
    customer_id: str
    email: str
    origin: str
    created_at: str


@dataclass
class Appointment:
    """An appointment of a customer; `ghl_appointment_id` is kept as a custom field would be."""

    id: str
    customer_id: str
    title: str
    start: str
    end: str
    status: str
    origin: str
    updated_at: str
    ghl_appointment_id: str = ""


@dataclass
class Deal:
    """A deal card in the sales pipeline."""

    id: str
    customer_id: str
    stage: str
    updated_at: str


@dataclass
class Model:
    """Every record of the emulated company, with id counters (ids never repeat)."""

    customers: dict[str, Customer] = field(default_factory=dict)
    leads: list[Lead] = field(default_factory=list)
    appointments: dict[str, Appointment] = field(default_factory=dict)
    deals: dict[str, Deal] = field(default_factory=dict)
    _next: dict[str, int] = field(default_factory=dict)
    _last_stamp: float = 0.0

    def new_id(self, kind: str) -> str:
        """`dj_<kind>_<n>`: c customers, l leads, a appointments, d deals."""
        number = self._next.get(kind, 0) + 1
        self._next[kind] = number
        return f"dj_{kind}_{number}"

    def stamp(self, now: float) -> str:
        """An ISO-8601 UTC time, strictly later than the previous one (updated_at must order)."""
        self._last_stamp = max(now, self._last_stamp + 1e-6)
        moment = datetime.fromtimestamp(self._last_stamp, UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def find_customer(self, data: dict[str, str]) -> Customer | None:
        """The customer a Zap's fields point at: by ghl_contact_id, then email, then phone."""
        for key, same in (
            ("ghl_contact_id", _same_text),
            ("email", _same_email),
            ("phone", _same_phone),
        ):
            wanted = data.get(key, "")
            if not wanted:
                continue
            for customer in self.customers.values():
                if same(customer.fields.get(key, ""), wanted):
                    return customer
        return None

    def customer_by_email(self, email: str) -> Customer | None:
        """The customer holding `email` (case-insensitive), if any."""
        if not email:
            return None
        return next(
            (c for c in self.customers.values() if _same_email(c.fields.get("email", ""), email)),
            None,
        )

    def latest_deal(self, customer_id: str) -> Deal | None:
        """The customer's most recently created deal (what Move Deal moves)."""
        deals = [d for d in self.deals.values() if d.customer_id == customer_id]
        return max(deals, key=lambda d: _number(d.id)) if deals else None

    def nearest_scheduled(self, customer_id: str, now: float) -> Appointment | None:
        """The customer's next scheduled appointment, else the latest past one."""
        scheduled = [
            a
            for a in self.appointments.values()
            if a.customer_id == customer_id and a.status == "scheduled"
        ]
        upcoming = [a for a in scheduled if _instant(a.start) >= now]
        if upcoming:
            return min(upcoming, key=lambda a: _instant(a.start))
        return max(scheduled, key=lambda a: _instant(a.start), default=None)

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-able data (the admin API's state view)."""
        return {
            "customers": [_customer_view(c) for c in self.customers.values()],
            "leads": [vars(lead).copy() for lead in self.leads],
            "appointments": [vars(a).copy() for a in self.appointments.values()],
            "deals": [vars(d).copy() for d in self.deals.values()],
        }


def _customer_view(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        **customer.fields,
        "origin": customer.origin,
        "updated_at": customer.updated_at,
    }


def clean_fields(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The named fields that carry a non-empty value, as stripped strings."""
    cleaned: dict[str, str] = {}
    for name in names:
        value = data.get(name)
        if value is None:
            continue
        text = str(value).strip()
        if text:
            cleaned[name] = text
    return cleaned


def _same_text(held: str, wanted: str) -> bool:
    return bool(held) and held == wanted


def _same_email(held: str, wanted: str) -> bool:
    return bool(held) and held.strip().lower() == wanted.strip().lower()


def phone_digits(phone: str) -> str:
    """The national digits of a (NANP-style) phone: '+1 (555) 010-2030' → '5550102030'."""
    digits = re.sub(r"\D", "", phone)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def _same_phone(held: str, wanted: str) -> bool:
    return bool(held) and phone_digits(held) == phone_digits(wanted)


def _number(record_id: str) -> int:
    return int(record_id.rsplit("_", 1)[-1])


def _instant(iso: str) -> float:
    """Seconds since the epoch of an ISO-8601 time (no offset: read as UTC)."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def same_instant(left: str, right: str) -> bool:
    """Whether two ISO-8601 strings name the same moment (offsets may differ)."""
    return left == right or (_instant(left) == _instant(right) != 0.0)
