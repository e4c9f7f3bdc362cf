"""The emulator's admin API under `/dripjobs/_admin/` (no auth, test-only).

Read the state and counters, set where triggers go and the write-back secret, inject faults
on the catch hooks, and act as a DripJobs user: each user action fires its trigger.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from ghlsync.sandbox.dripjobs import _ops
from ghlsync.sandbox.dripjobs._firing import TriggerFirer
from ghlsync.sandbox.dripjobs._model import CUSTOMER_FIELDS, clean_fields
from ghlsync.sandbox.dripjobs._ops import Outcome
from ghlsync.sandbox.dripjobs._signature import key_of
from ghlsync.sandbox.dripjobs._state import DripJobsState, HookFaults

router = APIRouter(prefix="/dripjobs/_admin")
_USER = "user"


def _state(request: Request) -> DripJobsState:
    state: DripJobsState = request.app.state.dripjobs
    return state


def _firer(request: Request) -> TriggerFirer:
    firer: TriggerFirer = request.app.state.dripjobs_firer
    return firer


StateDep = Annotated[DripJobsState, Depends(_state)]
FirerDep = Annotated[TriggerFirer, Depends(_firer)]


class SettingsBody(BaseModel):
    """Settings to change; absent keys keep their value."""

    model_config = ConfigDict(extra="forbid")

    ghlsync_url: str | None = None
    connection: str | None = None
    secret: str | None = None
    writeback_secret: str | None = None
    timestamp_tolerance: float | None = Field(None, ge=0)
    fire_delay_seconds: float | None = Field(None, ge=0)
    fire_max_attempts: int | None = Field(None, ge=1)
    fire_retry_seconds: float | None = Field(None, ge=0)


class FaultsBody(BaseModel):
    """Catch-hook faults: probabilities per write-back, and a script of forced ones."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    rate_429: float = Field(0.0, alias="429", ge=0, le=1)
    rate_500: float = Field(0.0, alias="500", ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)
    retry_after: int = Field(1, ge=0)
    timeout_seconds: float = Field(3.0, ge=0)
    script: list[str] = Field(default_factory=list)
    seed: int | None = None


class LeadBody(BaseModel):
    """A lead typed into DripJobs."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    lead_source: str | None = None
    notes: str | None = None


class AppointmentBody(BaseModel):
    """An appointment scheduled in DripJobs."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    title: str = "Estimate"
    start: str
    end: str


class AppointmentChange(BaseModel):
    """A change to an appointment (status "canceled" cancels it)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    start: str | None = None
    end: str | None = None
    status: str | None = Field(None, pattern="^(scheduled|canceled)$")


class DealMove(BaseModel):
    """Move a customer's deal to a stage."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    stage: str = Field(min_length=1)


@router.get("/state")
async def state_view(state: StateDep) -> dict[str, Any]:
    """Customers, leads, appointments and deals."""
    with state.lock:
        return state.model.snapshot()


@router.get("/counters")
async def counters(state: StateDep) -> dict[str, Any]:
    """What was received (write-backs, duplicates by webhook-id, leads per email) and fired."""
    return state.counters()


@router.get("/writebacks")
async def writebacks(state: StateDep, since: int = 0) -> list[dict[str, Any]]:
    """Every write-back applied, oldest first (`since=N` skips the first N)."""
    with state.lock:
        return [dict(entry) for entry in state.writebacks[since:]]


@router.get("/fired")
async def fired(state: StateDep, since: int = 0) -> list[dict[str, Any]]:
    """Every trigger fired at ghlsync, with its delivery status, oldest first."""
    with state.lock:
        return [dict(entry) for entry in state.fired[since:]]


@router.get("/settings")
async def get_settings(state: StateDep) -> dict[str, Any]:
    """The settings (secrets masked)."""
    return state.settings.view()


@router.put("/settings")
async def put_settings(body: SettingsBody, state: StateDep) -> dict[str, Any]:
    """Change where triggers go, the secrets, and the firing pace."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("writeback_secret"):
        try:
            key_of(changes["writeback_secret"])
        except ValueError as exc:
            raise HTTPException(422, f"writeback_secret: {exc}") from exc
    with state.lock:
        for name, value in changes.items():
            setattr(state.settings, name, value)
    return state.settings.view()


@router.get("/faults")
async def get_faults(state: StateDep) -> dict[str, Any]:
    """The catch-hook faults in force."""
    with state.lock:
        return dict(vars(state.faults))


@router.put("/faults")
async def put_faults(body: FaultsBody, state: StateDep) -> dict[str, Any]:
    """Replace the catch-hook faults (`{}` turns them off)."""
    unknown = [name for name in body.script if name not in ("429", "500", "timeout", "none")]
    if unknown:
        raise HTTPException(422, f"script: unknown faults {unknown}")
    values = body.model_dump(exclude={"seed"})
    with state.lock:
        state.faults = HookFaults(**values)
        if body.seed is not None:
            state.rng.seed(body.seed)
        return dict(vars(state.faults))


@router.post("/reset")
async def reset(state: StateDep) -> dict[str, str]:
    """Back to an empty company (the settings stay)."""
    state.reset()
    return {"status": "reset"}


@router.post("/leads", status_code=201)
async def create_lead(body: LeadBody, state: StateDep, firer: FirerDep) -> dict[str, Any]:
    """A user creates a lead: fires lead.created."""
    fields = clean_fields(body.model_dump(), CUSTOMER_FIELDS)
    with state.lock:
        outcome = _ops.add_lead(state.model, fields, _USER, state.clock.now())
    return _fire(firer, outcome)


@router.patch("/customers/{customer_id}")
async def edit_customer(
    customer_id: str, body: LeadBody, state: StateDep, firer: FirerDep
) -> dict[str, Any]:
    """A user edits a customer: fires customer.updated when something changed."""
    changes = {k: (v or "").strip() for k, v in body.model_dump(exclude_unset=True).items()}
    with state.lock:
        customer = state.model.customers.get(customer_id)
        if customer is None:
            raise HTTPException(404, f"no customer {customer_id}")
        outcome = _ops.edit_customer(state.model, customer, changes, state.clock.now())
    return _fire(firer, outcome)


@router.post("/appointments", status_code=201)
async def schedule(body: AppointmentBody, state: StateDep, firer: FirerDep) -> dict[str, Any]:
    """A user schedules an appointment: fires appointment.scheduled."""
    details = {"title": body.title, "start": body.start, "end": body.end}
    with state.lock:
        customer = state.model.customers.get(body.customer_id)
        if customer is None:
            raise HTTPException(404, f"no customer {body.customer_id}")
        outcome = _ops.schedule(state.model, customer, details, _USER, state.clock.now())
    return _fire(firer, outcome)


@router.patch("/appointments/{appointment_id}")
async def reschedule(
    appointment_id: str, body: AppointmentChange, state: StateDep, firer: FirerDep
) -> dict[str, Any]:
    """A user reschedules or cancels: fires appointment.updated / appointment.canceled."""
    changes = {k: v for k, v in body.model_dump().items() if v}
    with state.lock:
        appointment = state.model.appointments.get(appointment_id)
        if appointment is None:
            raise HTTPException(404, f"no appointment {appointment_id}")
        outcome = _ops.reschedule(state.model, appointment, changes, state.clock.now())
    return _fire(firer, outcome)


@router.post("/deals/move")
async def move_deal(body: DealMove, state: StateDep, firer: FirerDep) -> dict[str, Any]:
    """A user moves a deal: fires deal.stage_changed when the stage changed."""
    with state.lock:
        customer = state.model.customers.get(body.customer_id)
        if customer is None:
            raise HTTPException(404, f"no customer {body.customer_id}")
        outcome = _ops.move(state.model, customer, body.stage, state.clock.now())
    return _fire(firer, outcome)


class TriggerBody(BaseModel):
    """A user action this emulator has no screen for (a proposal decided, a project completed,
    an invoice created, a text received, ...): the fields its Zapier trigger carries."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    fields: dict[str, str] = Field(default_factory=dict)


@router.post("/triggers/{event}")
async def fire_trigger(
    event: str, body: TriggerBody, state: StateDep, firer: FirerDep
) -> dict[str, Any]:
    """Fire one of DripJobs' other Zapier triggers for a customer (`_ops.OTHER_TRIGGERS`)."""
    if event not in _ops.OTHER_TRIGGERS:
        raise HTTPException(404, f"no trigger {event}; these fire here: {_ops.OTHER_TRIGGERS}")
    with state.lock:
        customer = state.model.customers.get(body.customer_id)
        if customer is None:
            raise HTTPException(404, f"no customer {body.customer_id}")
        outcome = _ops.other_trigger(state.model, customer, event, body.fields, state.clock.now())
    return _fire(firer, outcome)


def _fire(firer: TriggerFirer, outcome: Outcome) -> dict[str, Any]:
    entries = [firer.fire(event, fields) for event, fields in outcome.events]
    return {
        "id": outcome.record_id,
        "changed": outcome.changed,
        "fired": [{"event": e["event"], "delivery_id": e["delivery_id"]} for e in entries],
    }
