"""A realistic DripJobs trace with an exact mix, and the GHL state (and changes) it implies.

`build_trace(customers, seed)` gives the deliveries in arrival order: per customer a lead,
real updates, deal-stage changes, tasks (updated, completed), notes (updated) and
appointments (rescheduled, cancelled); customers interleave, each customer's events stay in
order. On top of the real events it adds exactly 30% no-op updates (the entity's current
data re-sent with a new delivery id) and 10% duplicate deliveries (an earlier delivery re-sent
with the same id, before that customer's next event, as a Zapier retry would).

`GhlModel` applies mapped events to a plain model of GHL state and says how many entities
each one really changed: that count, not the number of deliveries, is the denominator of
"calls per real change". It is computed from the mapper's output, independently of both the
engine and the naive flow, and it is also what both sandboxes must end up holding.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ghlsync.mapping import MappedEntity, MappedEvent, Mapper

Body = dict[str, Any]
Kind = Literal["real", "noop", "duplicate"]

NOOP_SHARE = 0.30
DUPLICATE_SHARE = 0.10

FIRST = ["Ava", "Ben", "Cora", "Dan", "Eli", "Faye", "Gus", "Hana", "Ivan", "June", "Kai"]
LAST = ["Reyes", "Okafor", "Nguyen", "Smith", "Haas", "Patel", "Moreau", "Kowalski", "Lind"]
SOURCES = ["Google", "Facebook", "Referral", "Yard Sign", "Website"]
STAGES = ["New Lead", "Estimate Scheduled", "Proposal Sent", "Won", "Lost"]
CITIES = [("Austin", "TX", "78701"), ("Denver", "CO", "80202"), ("Tampa", "FL", "33602")]
TASK_TITLES = ["Call back", "Send estimate", "Measure deck", "Order paint"]
TOPICS = ["cabinets", "fence", "deck", "roof"]
BASE = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)

# The event that re-sends an entity's current data (a no-op update).
UPDATE_EVENT = {
    "contact": "customer.updated",
    "task": "task.updated",
    "note": "note.updated",
    "appointment": "appointment.updated",
}


@dataclass(frozen=True)
class TraceDelivery:
    """One delivery as a Zap sends it: event, folded payload, delivery id, and what it is."""

    event: str
    payload: Body
    delivery_id: str
    customer_id: str
    kind: Kind


@dataclass
class Trace:
    """The deliveries in arrival order, with the counts of each kind."""

    deliveries: list[TraceDelivery]

    def count(self, kind: Kind) -> int:
        """How many deliveries are of `kind`."""
        return sum(1 for d in self.deliveries if d.kind == kind)


@dataclass
class _Step:
    """A real event of one customer, or a marker for a no-op re-send of one of its entities."""

    event: str
    entity: str  # "contact" or "<type>:<id>"
    payload: Body | None  # None: a no-op, filled in when the customer's list is walked


@dataclass
class _Customer:
    n: int
    first: str
    last: str
    phone: str
    source: str
    city: tuple[str, str, str]
    stage: str | None = None

    @property
    def customer_id(self) -> str:
        return f"cust-{self.n:05d}"

    @property
    def email(self) -> str:
        return f"{self.first}.{self.last.split('-')[0]}.{self.n}@example.com".lower()

    def fields(self) -> Body:
        city, state, zip_code = self.city
        body: Body = {
            "customer_id": self.customer_id,
            "first_name": self.first,
            "last_name": self.last,
            "email": self.email,
            "phone": self.phone,
            "city": city,
            "state": state,
            "zip": zip_code,
            "lead_source": self.source,
        }
        if self.stage is not None:
            body["deal_id"] = f"deal-{self.n:05d}"
            body["deal_stage"] = self.stage
        return body

    def ident(self) -> Body:
        """The customer fields a Zap adds to a task, note or appointment event."""
        return {
            "customer_id": self.customer_id,
            "email": self.email,
            "first_name": self.first,
            "last_name": self.last,
        }


def _phone(n: int, version: int) -> str:
    return f"(512) {555 + version:03d}-{1000 + n:04d}"


class TraceBuilder:
    """Builds the trace; deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._delivery = 0

    def _next_id(self) -> str:
        self._delivery += 1
        return f"bench-{self._delivery:07d}"

    def customer_steps(self, n: int) -> list[_Step]:
        """The customer's real events in order (no-op markers are inserted later)."""
        return [
            *self._contact_steps(),
            *self._task_steps(n),
            *self._note_steps(n),
            *self._appointment_steps(n),
        ]

    def _contact_steps(self) -> list[_Step]:
        rng = self.rng
        steps = [_Step("lead.created", "contact", {})]
        for version in range(1, rng.choice([0, 1, 1, 2]) + 1):
            what = rng.choice(["last", "phone", "city"])
            steps.append(_Step("customer.updated", "contact", {"change": what, "v": version}))
        for _ in range(rng.choice([0, 1, 1, 2])):
            steps.append(_Step("deal.stage_changed", "contact", {"change": "stage"}))
        return steps

    def _task_steps(self, n: int) -> list[_Step]:
        steps: list[_Step] = []
        for k in range(self.rng.choice([0, 1, 1, 2])):
            key = f"task:task-{n:05d}-{k}"
            steps.append(_Step("task.created", key, {"k": k}))
            if self.rng.random() < 0.3:
                steps.append(_Step("task.updated", key, {"change": "due"}))
            if self.rng.random() < 0.4:
                steps.append(_Step("task.completed", key, {"change": "done"}))
        return steps

    def _note_steps(self, n: int) -> list[_Step]:
        if self.rng.random() >= 0.6:
            return []
        key = f"note:note-{n:05d}"
        steps = [_Step("note.created", key, {})]
        if self.rng.random() < 0.3:
            steps.append(_Step("note.updated", key, {"change": "more"}))
        return steps

    def _appointment_steps(self, n: int) -> list[_Step]:
        if self.rng.random() >= 0.4:
            return []
        key = f"appointment:appt-{n:05d}"
        steps = [_Step("appointment.scheduled", key, {})]
        if self.rng.random() < 0.3:
            steps.append(_Step("appointment.updated", key, {"change": "reschedule"}))
        if self.rng.random() < 0.25:
            steps.append(_Step("appointment.canceled", key, {"change": "cancel"}))
        return steps

    def materialise(self, n: int, steps: list[_Step]) -> list[TraceDelivery]:
        """Walk one customer's steps, building each payload from the state at that point."""
        person = self._person(n)
        latest: dict[str, Body] = {}
        out: list[TraceDelivery] = []
        for step in steps:
            if step.payload is None:  # a no-op: the entity's current data, re-sent
                payload = {
                    **latest[step.entity],
                    **(person.ident() if step.entity != "contact" else person.fields()),
                }
                out.append(self._delivery_of(step.event, payload, person, "noop"))
                continue
            payload = self._real_payload(person, step, latest.get(step.entity))
            latest[step.entity] = payload
            out.append(self._delivery_of(step.event, payload, person, "real"))
        return out

    def _delivery_of(
        self, event: str, payload: Body, person: _Customer, kind: Kind
    ) -> TraceDelivery:
        return TraceDelivery(event, dict(payload), self._next_id(), person.customer_id, kind)

    def _person(self, n: int) -> _Customer:
        return _Customer(
            n=n,
            first=self.rng.choice(FIRST),
            last=self.rng.choice(LAST),
            phone=_phone(n, 0),
            source=self.rng.choice(SOURCES),
            city=self.rng.choice(CITIES),
        )

    def _real_payload(self, person: _Customer, step: _Step, before: Body | None) -> Body:
        assert step.payload is not None
        change = step.payload.get("change")
        if step.entity == "contact":
            self._change_person(person, change, step.payload.get("v", 0))
            return person.fields()
        kind, source_id = step.entity.split(":", 1)
        if before is None:
            return {**person.ident(), **self._new_child(kind, source_id, person.n, step.payload)}
        return {**before, **person.ident(), **self._changed_child(kind, before, change)}

    def _change_person(self, person: _Customer, change: Any, version: int) -> None:
        if change == "last":
            person.last = f"{person.last.split('-')[0]}-{self.rng.choice(LAST)}{version}"
        elif change == "phone":
            person.phone = _phone(person.n, version)
        elif change == "city":
            person.city = next(c for c in CITIES if c != person.city)
        elif change == "stage":
            person.stage = self.rng.choice([s for s in STAGES if s != person.stage])

    def _new_child(self, kind: str, source_id: str, n: int, spec: Body) -> Body:
        if kind == "task":
            due = (BASE + timedelta(days=spec.get("k", 0) + 1)).date().isoformat()
            title = f"{TASK_TITLES[(n + spec.get('k', 0)) % len(TASK_TITLES)]} #{spec.get('k', 0)}"
            return {
                "task_id": source_id,
                "task_title": title,
                "task_due": due,
                "task_status": "open",
            }
        if kind == "note":
            topic = self.rng.choice(TOPICS)
            return {"note_id": source_id, "note_body": f"Site visit: {topic}\nCustomer asked."}
        start = BASE + timedelta(days=3, hours=n % 8)
        return {
            "appointment_id": source_id,
            "appointment_title": "On-site estimate",
            "appointment_start": start.isoformat(),
            "appointment_end": (start + timedelta(hours=1)).isoformat(),
        }

    @staticmethod
    def _changed_child(kind: str, before: Body, change: Any) -> Body:
        if change == "due":
            due = datetime.fromisoformat(before["task_due"]) + timedelta(days=2)
            return {"task_due": due.date().isoformat()}
        if change == "done":
            return {"task_status": "completed"}
        if change == "more":
            return {"note_body": before["note_body"] + " Follow-up booked."}
        if change == "reschedule":
            start = datetime.fromisoformat(before["appointment_start"]) + timedelta(days=1)
            return {
                "appointment_start": start.isoformat(),
                "appointment_end": (start + timedelta(hours=1)).isoformat(),
            }
        return {"appointment_status": "canceled"}


def _insert_noops(rng: random.Random, scripts: list[list[_Step]], count: int) -> None:
    """Put `count` no-op markers at random points after their entity exists."""
    for _ in range(count):
        steps = rng.choice(scripts)
        at = rng.randint(1, len(steps))
        known = sorted({s.entity for s in steps[:at] if s.payload is not None})
        entity = rng.choice(known)
        kind = entity.split(":", 1)[0]
        steps.insert(at, _Step(UPDATE_EVENT[kind], entity, None))


def _interleave(rng: random.Random, streams: list[list[TraceDelivery]]) -> list[TraceDelivery]:
    """Merge the customers' streams at random, keeping each customer's order."""
    pending = [list(reversed(s)) for s in streams if s]
    out: list[TraceDelivery] = []
    while pending:
        i = rng.randrange(len(pending))
        out.append(pending[i].pop())
        if not pending[i]:
            pending[i] = pending[-1]
            pending.pop()
    return out


def _insert_duplicates(
    rng: random.Random, order: list[TraceDelivery], count: int
) -> list[TraceDelivery]:
    """Re-send `count` deliveries (same id) before their customer's next event."""
    after: dict[int, list[TraceDelivery]] = {}
    for i in rng.sample(range(len(order)), count):
        original = order[i]
        nxt = next(
            (j for j in range(i + 1, len(order)) if order[j].customer_id == original.customer_id),
            len(order),
        )
        at = rng.randint(i, nxt - 1)
        copy = TraceDelivery(
            original.event,
            dict(original.payload),
            original.delivery_id,
            original.customer_id,
            "duplicate",
        )
        after.setdefault(at, []).append(copy)
    out: list[TraceDelivery] = []
    for i, item in enumerate(order):
        out.append(item)
        out.extend(after.get(i, []))
    return out


def build_trace(customers: int = 300, *, seed: int = 11) -> Trace:
    """The trace for `customers` customers: exactly 30% no-ops and 10% duplicates (rounded)."""
    builder = TraceBuilder(seed)
    scripts = [builder.customer_steps(n) for n in range(1, customers + 1)]
    real = sum(len(s) for s in scripts)
    total = round(real / (1 - NOOP_SHARE - DUPLICATE_SHARE))
    _insert_noops(builder.rng, scripts, round(total * NOOP_SHARE))
    streams = [builder.materialise(n, s) for n, s in enumerate(scripts, start=1)]
    order = _interleave(builder.rng, streams)
    duplicates = total - len(order)
    return Trace(_insert_duplicates(builder.rng, order, duplicates))


# --- the model of GHL state ------------------------------------------------------------------


@dataclass
class ModelContact:
    """What GHL holds for one contact: its fields and tags (lower-case)."""

    fields: Body = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)


@dataclass
class ModelChild:
    """A task, note or appointment: its contact's DripJobs id and its GHL fields."""

    customer_id: str
    fields: Body = field(default_factory=dict)


@dataclass
class GhlModel:
    """GHL state implied by the events applied so far; `apply` returns the entities changed."""

    contacts: dict[str, ModelContact] = field(default_factory=dict)
    children: dict[tuple[str, str], ModelChild] = field(default_factory=dict)

    def apply(self, mapped: MappedEvent) -> int:
        """Apply one mapped event; the number of entities whose GHL state it changed."""
        return sum(1 for entity in mapped.entities if self._apply(entity))

    def _apply(self, entity: MappedEntity) -> bool:
        if entity.type == "contact":
            return self._apply_contact(entity)
        assert entity.parent is not None
        key = (entity.type, entity.source_id)
        child = self.children.get(key)
        body = entity.request_body("create") if child is None else dict(entity.body)
        if child is None:
            self.children[key] = ModelChild(entity.parent.source_id, _canonical(body))
            return True
        return _merge(child.fields, body)

    def _apply_contact(self, entity: MappedEntity) -> bool:
        contact = self.contacts.get(entity.source_id)
        created = contact is None
        if contact is None:
            contact = self.contacts[entity.source_id] = ModelContact()
        changed = _merge(contact.fields, entity.body)
        delta = entity.tag_delta(sorted(contact.tags))
        tags = (contact.tags - set(delta.remove)) | set(delta.add)
        changed = changed or tags != contact.tags
        contact.tags = tags
        return created or changed


def _canonical(body: Body) -> Body:
    return {k: _value(v) for k, v in body.items() if k != "ignoreFreeSlotValidation"}


def _value(value: Any) -> Any:
    """Dates compare as instants: the mapper writes local offsets, GHL may answer in UTC."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return value
    return value


def _merge(target: Body, body: Body) -> bool:
    """Overlay `body` on `target`; True if anything changed."""
    changed = False
    for key, value in _canonical(body).items():
        if target.get(key) != value:
            target[key] = value
            changed = True
    return changed


def replay_model(trace: Trace, mapper: Mapper) -> tuple[GhlModel, int]:
    """The GHL state the trace implies and its number of real changes (duplicates skipped)."""
    model = GhlModel()
    seen: set[str] = set()
    changes = 0
    for delivery in trace.deliveries:
        if delivery.delivery_id in seen:
            continue
        seen.add(delivery.delivery_id)
        changes += model.apply(mapper.map(delivery.event, delivery.payload))
    return model, changes


def iter_changes(trace: Trace, mapper: Mapper) -> Iterator[tuple[TraceDelivery, int]]:
    """Each delivery with the number of entities it changed (0 for duplicates and no-ops)."""
    model = GhlModel()
    seen: set[str] = set()
    for delivery in trace.deliveries:
        if delivery.delivery_id in seen:
            yield delivery, 0
            continue
        seen.add(delivery.delivery_id)
        yield delivery, model.apply(mapper.map(delivery.event, delivery.payload))


# --- comparable snapshots ----------------------------------------------------------------------

CONTACT_KEYS = ("firstName", "lastName", "email", "phone", "city", "state", "postalCode", "source")
CHILD_KEYS = {
    "task": ("title", "dueDate", "completed"),
    "note": ("body",),
    "appointment": ("title", "startTime", "endTime", "appointmentStatus"),
}
# How a child is told apart within its contact (what the naive flow matches on, too).
CHILD_NAME = {"task": "title", "note": "body", "appointment": "title"}

Snapshot = dict[str, Any]


def _child_entry(kind: str, fields: Body) -> tuple[str, Body]:
    name = str(fields.get(CHILD_NAME[kind], "")).split("\n", 1)[0]
    entry = {k: _value(fields.get(k)) for k in CHILD_KEYS[kind]}
    if kind == "appointment" and entry["appointmentStatus"] is None:
        entry["appointmentStatus"] = "new"  # GHL's default for a new appointment
    return name, entry


def model_snapshot(model: GhlModel) -> Snapshot:
    """The model's state keyed by email: contact fields and tags, and each contact's children."""
    out: Snapshot = {}
    email_of: dict[str, str] = {}
    for customer_id, contact in model.contacts.items():
        email = str(contact.fields.get("email", "")).lower()
        email_of[customer_id] = email
        out[email] = _contact_entry(contact.fields, contact.tags)
    for (kind, _), child in model.children.items():
        name, fields = _child_entry(kind, child.fields)
        out[email_of[child.customer_id]][kind][name] = fields
    return out


def sandbox_snapshot(location: Any) -> Snapshot:
    """The same view of a sandbox location (`SandboxState.location(id)`)."""
    out: Snapshot = {}
    email_of: dict[str, str] = {}
    for contact_id, contact in location.contacts.items():
        email = str(contact.get("email", "")).lower()
        email_of[contact_id] = email
        if email in out:
            out[f"{email} (duplicate {contact_id})"] = out[email]
        out[email] = _contact_entry(contact, set(contact.get("tags") or []))
    for kind, records in (
        ("task", location.tasks),
        ("note", location.notes),
        ("appointment", location.appointments),
    ):
        for record in records.values():
            name, fields = _child_entry(kind, record)
            children = out[email_of[record["contactId"]]][kind]
            if name in children:
                name = f"{name} (duplicate {record['id']})"
            children[name] = fields
    return out


def _contact_entry(fields: Body, tags: set[str]) -> Body:
    return {
        "fields": {k: fields.get(k) for k in CONTACT_KEYS},
        "tags": sorted(t.lower() for t in tags),
        "task": {},
        "note": {},
        "appointment": {},
    }


def diff_snapshots(left: Snapshot, right: Snapshot, limit: int = 10) -> list[str]:
    """Human-readable differences (at most `limit`), empty when the two states are equal."""
    problems: list[str] = []
    for email in sorted(set(left) | set(right)):
        a, b = left.get(email), right.get(email)
        if a is None or b is None:
            problems.append(f"{email}: only in the {'right' if a is None else 'left'} state")
        elif a != b:
            parts = [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]
            problems.append(f"{email}: " + "; ".join(parts))
        if len(problems) >= limit:
            break
    return problems


def counts(snapshot: Snapshot) -> dict[str, int]:
    """How many contacts, tasks, notes and appointments a snapshot holds."""
    return {
        "contacts": len(snapshot),
        "tasks": sum(len(c["task"]) for c in snapshot.values()),
        "notes": sum(len(c["note"]) for c in snapshot.values()),
        "appointments": sum(len(c["appointment"]) for c in snapshot.values()),
    }
