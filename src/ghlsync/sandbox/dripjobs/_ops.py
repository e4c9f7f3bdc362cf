"""What happens in DripJobs when a record changes, and which Zapier trigger that fires.

The same operations serve the write-backs (a Zap running a DripJobs action) and the admin
API (a DripJobs user at work), so both fire the same triggers. Each returns an `Outcome`: did
anything change, and the events to fire (trigger name, flat fields as the preset reads them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ghlsync.sandbox.dripjobs._model import (
    CUSTOMER_FIELDS,
    Appointment,
    Customer,
    Deal,
    Lead,
    Model,
    same_instant,
)

# The fields a "New Lead Created" trigger carries (the contract's list; notes stay inside).
LEAD_EVENT_FIELDS = tuple(name for name in CUSTOMER_FIELDS if name != "notes")
APPOINTMENT_REQUEST_STAGE = "Appointment Requested"


@dataclass
class Outcome:
    """The effect of one operation: changed anything, events to fire, or why it could not run."""

    changed: bool = False
    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    error: str | None = None
    record_id: str | None = None


def add_lead(model: Model, fields: dict[str, str], origin: str, now: float) -> Outcome:
    """Create Lead: a new customer, or a new lead on the customer with that email."""
    customer = model.customer_by_email(fields.get("email", ""))
    changed = customer is None
    if customer is None:
        customer = new_customer(model, fields, origin, now)
    else:
        changed = _fill_blanks(customer, fields)
        if changed:
            customer.updated_at = model.stamp(now)
    stamp = model.stamp(now)
    lead = Lead(model.new_id("l"), customer.id, customer.fields.get("email", ""), origin, stamp)
    model.leads.append(lead)
    return Outcome(changed, [lead_created(customer, stamp)], record_id=customer.id)


def new_customer(model: Model, fields: dict[str, str], origin: str, now: float) -> Customer:
    """A new customer holding `fields`."""
    customer = Customer(model.new_id("c"), dict(fields), origin, model.stamp(now))
    model.customers[customer.id] = customer
    return customer


def edit_customer(model: Model, customer: Customer, fields: dict[str, str], now: float) -> Outcome:
    """A user edits a customer: the given fields replace the held ones ("" clears one)."""
    before = dict(customer.fields)
    for name, value in fields.items():
        if value:
            customer.fields[name] = value
        else:
            customer.fields.pop(name, None)
    if customer.fields == before:
        return Outcome(record_id=customer.id)
    customer.updated_at = model.stamp(now)
    event = _customer_fields(customer, LEAD_EVENT_FIELDS, customer.updated_at)
    return Outcome(True, [("customer.updated", event)], record_id=customer.id)


def schedule(
    model: Model, customer: Customer, details: dict[str, str], origin: str, now: float
) -> Outcome:
    """A new scheduled appointment (`details`: title, start, end, ghl_appointment_id)."""
    appointment = Appointment(
        id=model.new_id("a"),
        customer_id=customer.id,
        title=details.get("title", "Appointment request"),
        start=details.get("start", ""),
        end=details.get("end", ""),
        status="scheduled",
        origin=origin,
        updated_at=model.stamp(now),
        ghl_appointment_id=details.get("ghl_appointment_id", ""),
    )
    model.appointments[appointment.id] = appointment
    event = appointment_fields(appointment)
    return Outcome(True, [("appointment.scheduled", event)], record_id=appointment.id)


def reschedule(
    model: Model, appointment: Appointment, changes: dict[str, str], now: float
) -> Outcome:
    """Change an appointment's title/start/end/status; nothing changed fires nothing."""
    changed = False
    for name in ("title", "start", "end", "status"):
        value = changes.get(name)
        if not value or _same(name, getattr(appointment, name), value):
            continue
        setattr(appointment, name, value)
        changed = True
    if not changed:
        return Outcome(record_id=appointment.id)
    appointment.updated_at = model.stamp(now)
    name = "appointment.canceled" if appointment.status == "canceled" else "appointment.updated"
    return Outcome(True, [(name, appointment_fields(appointment))], record_id=appointment.id)


def move(model: Model, customer: Customer, stage: str, now: float) -> Outcome:
    """Move Deal: the customer's latest deal (a new one on the first move) to `stage`."""
    deal = model.latest_deal(customer.id)
    if deal is not None and deal.stage == stage:
        return Outcome(record_id=deal.id)
    if deal is None:
        deal = Deal(model.new_id("d"), customer.id, stage, "")
        model.deals[deal.id] = deal
    deal.stage = stage
    deal.updated_at = model.stamp(now)
    event = {
        "customer_id": customer.id,
        "deal_id": deal.id,
        "deal_stage": stage,
        "updated_at": deal.updated_at,
    }
    return Outcome(True, [("deal.stage_changed", event)], record_id=deal.id)


# Zapier triggers this emulator has no screen for: a user's action in DripJobs fires them for a
# known customer, with the fields the action carries (proposal amount, invoice, label, ...).
OTHER_TRIGGERS = (
    "proposal.accepted",
    "proposal.rejected",
    "proposal.viewed",
    "project.stage_changed",
    "project.completed",
    "booking_form.submitted",
    "estimate.scheduled",
    "custom_event.scheduled",
    "job_costing.completed",
    "invoice.created",
    "payment.received",
    "text_message.received",
    "card_label.changed",
    "task.created",
)


def other_trigger(
    model: Model, customer: Customer, event: str, fields: dict[str, str], now: float
) -> Outcome:
    """One of `OTHER_TRIGGERS` for `customer`: its fields, the customer's and its deal's."""
    stamp = model.stamp(now)
    payload = _customer_fields(customer, LEAD_EVENT_FIELDS, stamp)
    deal = model.latest_deal(customer.id)
    if deal is not None:
        payload.update({"deal_id": deal.id, "deal_stage": deal.stage})
    payload.update({k: v for k, v in fields.items() if v})
    return Outcome(True, [(event, payload)], record_id=customer.id)


def open_deal(model: Model, customer: Customer, now: float) -> None:
    """Create Appointment Request also puts a deal in the pipeline (no trigger of its own)."""
    if model.latest_deal(customer.id) is None:
        deal = Deal(model.new_id("d"), customer.id, APPOINTMENT_REQUEST_STAGE, model.stamp(now))
        model.deals[deal.id] = deal


def lead_created(customer: Customer, stamp: str) -> tuple[str, dict[str, str]]:
    """The "New Lead Created" trigger for a lead of `customer`."""
    return "lead.created", _customer_fields(customer, LEAD_EVENT_FIELDS, stamp)


def appointment_fields(appointment: Appointment) -> dict[str, str]:
    """The flat fields of an appointment trigger (empty ones left out)."""
    fields = {
        "appointment_id": appointment.id,
        "customer_id": appointment.customer_id,
        "appointment_title": appointment.title,
        "appointment_start": appointment.start,
        "appointment_end": appointment.end,
        "appointment_status": appointment.status,
        "updated_at": appointment.updated_at,
    }
    return {key: value for key, value in fields.items() if value}


def _customer_fields(customer: Customer, names: tuple[str, ...], stamp: str) -> dict[str, str]:
    fields = {"customer_id": customer.id}
    fields.update({name: customer.fields[name] for name in names if customer.fields.get(name)})
    fields["updated_at"] = stamp
    return fields


def _fill_blanks(customer: Customer, fields: dict[str, str]) -> bool:
    """DripJobs keeps what a customer has; a new lead only fills the empty fields."""
    changed = False
    for name, value in fields.items():
        if value and not customer.fields.get(name):
            customer.fields[name] = value
            changed = True
    return changed


def _same(name: str, held: str, value: str) -> bool:
    if name in ("start", "end"):
        return same_instant(held, value)
    return held == value
