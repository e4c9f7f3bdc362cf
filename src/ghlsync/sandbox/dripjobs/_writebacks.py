"""The four write-back actions, each as the user's Zap would run it against DripJobs.

The `data` fields are the contract's (docs/two-way.md): flat strings, empty ones omitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ghlsync.sandbox.dripjobs import _ops
from ghlsync.sandbox.dripjobs._model import CUSTOMER_FIELDS, Model, clean_fields
from ghlsync.sandbox.dripjobs._ops import Outcome

CONTACT_FIELDS = ("ghl_contact_id", "email", "phone", "first_name", "last_name")
APPOINTMENT_FIELDS = (*CONTACT_FIELDS, "ghl_appointment_id", "start", "end", "title")
DEAL_FIELDS = ("ghl_contact_id", "email", "phone", "stage", "ghl_opportunity_id")
_ORIGIN = "writeback"


def create_lead(model: Model, data: dict[str, Any], now: float) -> Outcome:
    """Create Lead."""
    return _ops.add_lead(model, clean_fields(data, CUSTOMER_FIELDS), _ORIGIN, now)


def create_appointment_request(model: Model, data: dict[str, Any], now: float) -> Outcome:
    """Create Appointment Request: a contact (when new), a deal, and the appointment."""
    fields = clean_fields(data, APPOINTMENT_FIELDS)
    customer = model.find_customer(fields)
    if customer is None:
        contact = {name: fields[name] for name in CONTACT_FIELDS if name in fields}
        customer = _ops.new_customer(model, contact, _ORIGIN, now)
    _ops.open_deal(model, customer, now)
    return _ops.schedule(model, customer, fields, _ORIGIN, now)


def update_appointment(model: Model, data: dict[str, Any], now: float) -> Outcome:
    """Update Appointment (Nearest Scheduled) of the customer the fields point at."""
    fields = clean_fields(data, APPOINTMENT_FIELDS)
    customer = model.find_customer(fields)
    if customer is None:
        return Outcome(error="no customer matches ghl_contact_id, email or phone")
    appointment = model.nearest_scheduled(customer.id, now)
    if appointment is None:
        return Outcome(error=f"customer {customer.id} has no scheduled appointment")
    return _ops.reschedule(model, appointment, fields, now)


def move_deal(model: Model, data: dict[str, Any], now: float) -> Outcome:
    """Move Deal / Move Job: the customer's most recent deal to the stage."""
    fields = clean_fields(data, DEAL_FIELDS)
    if not fields.get("stage"):
        return Outcome(error="stage is empty")
    customer = model.find_customer(fields)
    if customer is None:
        return Outcome(error="no customer matches ghl_contact_id, email or phone")
    return _ops.move(model, customer, fields["stage"], now)


ACTIONS: dict[str, Callable[[Model, dict[str, Any], float], Outcome]] = {
    "create_lead": create_lead,
    "create_appointment_request": create_appointment_request,
    "update_appointment": update_appointment,
    "move_deal": move_deal,
}
