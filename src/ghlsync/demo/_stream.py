"""A realistic DripJobs event stream, as Zaps would send it, and the GHL state it implies.

Used by `ghlsync demo`, the end-to-end and crash tests and the benchmarks. The stream mixes
new leads, real updates, no-op updates, duplicate deliveries, deal stages, tasks, notes,
appointments and a few malformed events; `Expected` is the simple model of what GHL must hold
afterwards.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

FIRST = ["Ava", "Ben", "Cora", "Dan", "Eli", "Faye", "Gus", "Hana", "Ivan", "June", "Kai", "Lena"]
LAST = ["Reyes", "Okafor", "Nguyen", "Smith", "Haas", "Patel", "Moreau", "Kowalski", "Lind"]
SOURCES = ["Google", "Facebook", "Referral", "Yard Sign", "Website"]
STAGES = ["New Lead", "Estimate Scheduled", "Proposal Sent", "Won"]
CITIES = [("Austin", "TX", "78701"), ("Denver", "CO", "80202"), ("Tampa", "FL", "33602")]

Body = dict[str, Any]
Encoding = Literal["json", "form", "raw"]


@dataclass
class DemoEvent:
    """One delivery: what a Zap POSTs to /hooks/dripjobs/<event>, and the answer it must get."""

    event: str
    body: Body | str
    encoding: Encoding = "json"
    expect_status: int = 202
    delivery_id: str | None = None

    def content(self) -> tuple[bytes, str]:
        """The raw body and its content type."""
        if self.encoding == "raw":
            return str(self.body).encode(), "application/json"
        if self.encoding == "form":
            from urllib.parse import urlencode

            assert isinstance(self.body, dict)
            return urlencode(self.body).encode(), "application/x-www-form-urlencoded"
        return json.dumps(self.body).encode(), "application/json"


@dataclass
class ExpectedTask:
    title: str
    completed: bool = False
    deleted: bool = False


@dataclass
class ExpectedAppointment:
    title: str
    start: str
    canceled: bool = False


@dataclass
class ExpectedContact:
    customer_id: str
    email: str
    first_name: str
    last_name: str
    phone: str  # E.164
    tags: set[str] = field(default_factory=set)  # lower-case, as GHL stores them
    tasks: dict[str, ExpectedTask] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    appointments: dict[str, ExpectedAppointment] = field(default_factory=dict)


@dataclass
class Expected:
    """What GHL must hold after the stream: one contact per valid customer, and its children."""

    contacts: dict[str, ExpectedContact] = field(default_factory=dict)
    dead_letters: int = 0  # accepted deliveries whose data can't be mapped
    rejected: int = 0  # deliveries the receiver must refuse (4xx)
    duplicates: int = 0  # repeated deliveries (answered 200)
    noop_updates: int = 0


@dataclass
class _Person:
    customer_id: str
    first: str
    last: str
    email: str
    phone_local: str
    phone_e164: str
    source: str
    city: tuple[str, str, str]

    def fields(self, style: int) -> Body:
        """Customer fields, named the way different Zaps name them."""
        city, state, zip_code = self.city
        if style == 0:
            return {
                "customer_id": self.customer_id,
                "first_name": self.first,
                "last_name": self.last,
                "email": self.email,
                "phone": self.phone_local,
                "city": city,
                "state": state,
                "zip": zip_code,
                "lead_source": self.source,
            }
        return {
            "Customer ID": self.customer_id,
            "First Name": self.first,
            "Last Name": self.last,
            "Email": self.email.upper() if style == 2 else self.email,
            "Phone": self.phone_local,
            "City": city,
            "State": state,
            "Zip": zip_code,
            "Lead Source": self.source,
        }


class StreamBuilder:
    """Builds the stream customer by customer, keeping `Expected` in step."""

    def __init__(self, seed: int, *, child_stamps: bool = True) -> None:
        self.rng = random.Random(seed)
        self.child_stamps = child_stamps
        self.events: list[DemoEvent] = []
        self.expected = Expected()
        self._delivery = 0
        self._base = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
        self._now = self._base  # DripJobs' clock: every change is a minute after the last

    def delivery_id(self) -> str:
        self._delivery += 1
        return f"dlv-{self._delivery:06d}"

    def tick(self) -> str:
        """The next `updated_at`: DripJobs changed something a minute later."""
        self._now += timedelta(minutes=1)
        return self._now.isoformat()

    def emit(
        self,
        event: str,
        body: Body,
        *,
        encoding: Encoding = "json",
        with_id: bool = True,
        stamp: bool = True,
    ) -> DemoEvent:
        """A new delivery; without an id the receiver dedupes it by a hash of its body.

        Customer events carry `updated_at`; task, note and appointment events carry it too
        unless the builder was told otherwise (`child_stamps=False`). A child's timestamp
        dates the child only, never its customer (see the e2e test of that case).
        """
        stamped = dict(body)
        if stamp or self.child_stamps:
            stamped["updated_at"] = body.get("updated_at") or self.tick()
        if with_id:
            stamped["delivery_id"] = self.delivery_id()
        item = DemoEvent(event, stamped, encoding)
        self.events.append(item)
        return item

    def repeat(self, item: DemoEvent) -> None:
        """The same delivery again (Zapier retried it): answered 200, changes nothing."""
        self.events.append(DemoEvent(item.event, item.body, item.encoding, expect_status=200))
        self.expected.duplicates += 1

    def person(self, n: int) -> _Person:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        local = f"(512) 555-{1000 + n:04d}"
        return _Person(
            customer_id=f"cust-{n:05d}",
            first=first,
            last=last,
            email=f"{first}.{last}.{n}@example.com".lower(),
            phone_local=local,
            phone_e164=f"+1512555{1000 + n:04d}",
            source=self.rng.choice(SOURCES),
            city=self.rng.choice(CITIES),
        )

    def customer(self, n: int) -> None:
        p = self.person(n)
        contact = ExpectedContact(p.customer_id, p.email, p.first, p.last, p.phone_e164)
        contact.tags = {"lead", f"source:{p.source.lower()}"}
        self.expected.contacts[p.customer_id] = contact
        created = self.emit(
            "lead.created",
            p.fields(n % 3),
            encoding="form" if n % 5 == 0 else "json",
            with_id=n % 7 != 3,  # some Zaps send no delivery id
        )
        first_stamp = created.body["updated_at"] if isinstance(created.body, dict) else None
        if n == 1 or self.rng.random() < 0.10:  # every stream has a Zapier retry
            self.repeat(created)
        self.updates(p, contact, n)
        self.children(p, contact, n)
        if n == 3 or self.rng.random() < 0.08:
            self.stale_update(p, first_stamp)

    def updates(self, p: _Person, contact: ExpectedContact, n: int) -> None:
        if n == 2 or self.rng.random() < 0.30:  # a no-op update: same data, new delivery
            self.emit("customer.updated", p.fields(0))
            self.expected.noop_updates += 1
        if self.rng.random() < 0.40:  # a real change
            p.last = p.last + "-" + self.rng.choice(LAST)
            contact.last_name = p.last
            self.emit("customer.updated", p.fields(0))
        stages = self.rng.sample(STAGES, k=self.rng.choice([0, 0, 1, 2]))
        for stage in stages:  # each stage tag replaces the previous one
            body = {**p.fields(0), "deal_id": f"deal-{p.customer_id}", "deal_stage": stage}
            self.emit("deal.stage_changed", body)
            contact.tags = {t for t in contact.tags if not t.startswith("deal:")}
            contact.tags.add(f"deal:{stage.lower()}")

    def stale_update(self, p: _Person, stamp: object) -> None:
        """A delivery that arrives late, older than what GHL already has: it must not win."""
        older = datetime.fromisoformat(str(stamp)) - timedelta(seconds=30)
        stale = {**p.fields(0), "last_name": "Stale-Overwrite", "updated_at": older.isoformat()}
        self.emit("customer.updated", stale)

    def children(self, p: _Person, contact: ExpectedContact, n: int) -> None:
        ident = {
            "customer_id": p.customer_id,
            "email": p.email,
            "first_name": p.first,
            "last_name": p.last,
        }
        for k in range(self.rng.randint(0, 2)):
            task_id = f"task-{n:05d}-{k}"
            title = self.rng.choice(["Call back", "Send estimate", "Measure deck", "Order paint"])
            due = (self._base + timedelta(days=k + 1)).date().isoformat()
            self.emit(
                "task.created",
                {
                    **ident,
                    "task_id": task_id,
                    "task_title": title,
                    "task_due": due,
                    "task_status": "open",
                },
                stamp=False,
            )
            task = ExpectedTask(title)
            contact.tasks[task_id] = task
            if self.rng.random() < 0.4:
                self.emit(
                    "task.completed",
                    {
                        **ident,
                        "task_id": task_id,
                        "task_title": title,
                        "task_due": due,
                        "task_status": "completed",
                    },
                    stamp=False,
                )
                task.completed = True
            elif self.rng.random() < 0.15:
                self.emit("task.deleted", {**ident, "task_id": task_id}, stamp=False)
                task.deleted = True
        if self.rng.random() < 0.6:
            note_id = f"note-{n:05d}"
            text = f"Customer asked about {self.rng.choice(['cabinets', 'fence', 'deck'])}."
            self.emit("note.created", {**ident, "note_id": note_id, "note_body": text}, stamp=False)
            if self.rng.random() < 0.3:
                text += " Follow-up booked."
                self.emit(
                    "note.updated", {**ident, "note_id": note_id, "note_body": text}, stamp=False
                )
            contact.notes[note_id] = text
        if self.rng.random() < 0.4:
            self.appointment(ident, contact, n)

    def appointment(self, ident: Body, contact: ExpectedContact, n: int) -> None:
        appt_id = f"appt-{n:05d}"
        start = self._base + timedelta(days=3, hours=n % 8)
        body = {
            **ident,
            "appointment_id": appt_id,
            "appointment_title": "On-site estimate",
            "appointment_start": start.isoformat(),
            "appointment_end": (start + timedelta(hours=1)).isoformat(),
        }
        self.emit("appointment.scheduled", body, stamp=False)
        appt = ExpectedAppointment("On-site estimate", start.isoformat())
        contact.appointments[appt_id] = appt
        if self.rng.random() < 0.25:
            self.emit(
                "appointment.canceled", {**body, "appointment_status": "canceled"}, stamp=False
            )
            appt.canceled = True

    def malformed(self, n: int) -> None:
        """Bad input: each must get its documented answer and leave GHL untouched."""
        bad = self.person(n)
        self.emit("customer.created", {**bad.fields(0), "email": "not-an-email"})
        self.expected.dead_letters += 1
        self.events.append(DemoEvent("customer.created", "{not json", "raw", expect_status=400))
        self.events.append(DemoEvent("lead.created", {"first_name": "No Id"}, expect_status=400))
        self.events.append(DemoEvent("invoice.paid", {"customer_id": "x"}, expect_status=404))
        self.expected.rejected += 3


def build_stream(
    customers: int = 40, *, seed: int = 7, malformed: bool = True, child_stamps: bool = True
) -> tuple[list[DemoEvent], Expected]:
    """The demo stream for `customers` customers, deterministic for a seed."""
    builder = StreamBuilder(seed, child_stamps=child_stamps)
    for n in range(1, customers + 1):
        builder.customer(n)
    if malformed:
        builder.malformed(customers + 1)
    return builder.events, builder.expected
