"""The test-only admin API under `/_sandbox/` (no auth)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ghlsync.sandbox._deps import StateDep
from ghlsync.sandbox._errors import SandboxError, not_found
from ghlsync.sandbox._records import public
from ghlsync.sandbox._state import Faults, Limits, Location, SandboxState, calendar_id_of

router = APIRouter(prefix="/_sandbox")


class FaultsBody(BaseModel):
    """Probabilities per API request; at most one fault is drawn per request."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    rate_429: float = Field(0.0, alias="429", ge=0, le=1)
    rate_500: float = Field(0.0, alias="500", ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)
    reset: float = Field(0.0, ge=0, le=1)
    timeout_seconds: float = Field(3.0, ge=0)
    seed: int | None = None


class NewLocation(BaseModel):
    """Options of a new location; limits default to the sandbox's."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str | None = None
    token: str | None = None
    burst: int | None = Field(None, ge=1)
    interval_ms: int | None = Field(None, ge=1)
    daily: int | None = Field(None, ge=1)
    allow_duplicate_contact: bool = False
    duplicate_priority: list[str] = Field(default_factory=lambda: ["email", "phone"])


class LocationSettings(BaseModel):
    """Changeable settings of an existing location."""

    model_config = ConfigDict(extra="forbid")

    allow_duplicate_contact: bool | None = None
    duplicate_priority: list[str] | None = None
    burst: int | None = Field(None, ge=1)
    interval_ms: int | None = Field(None, ge=1)
    daily: int | None = Field(None, ge=1)


class WebhookTarget(BaseModel):
    """Where webhook events go (null stops delivery)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None


@router.get("/requests")
async def requests(state: StateDep, since: int = 0) -> list[dict[str, Any]]:
    """The call log, oldest first; `since=N` skips the first N entries (for polling)."""
    with state.lock:
        return state.requests[since:]


@router.get("/counters")
async def counters(state: StateDep) -> dict[str, Any]:
    """Calls and 429s per location (or company), and OAuth token-endpoint counts."""
    with state.lock:
        return counters_of(state)


def counters_of(state: SandboxState) -> dict[str, Any]:
    """The counters as JSON."""
    return {
        "calls": dict(state.calls),
        "throttled": dict(state.throttled),
        "total_calls": sum(state.calls.values()),
        "total_throttled": sum(state.throttled.values()),
        "token_calls": dict(state.token_calls),
        "refresh_token_uses": dict(state.refresh_uses),
        "webhook_deliveries": len(state.webhook_deliveries),
    }


@router.get("/faults")
async def get_faults(state: StateDep) -> dict[str, Any]:
    """The fault configuration in force."""
    f = state.faults
    return {
        "429": f.rate_429,
        "500": f.rate_500,
        "timeout": f.timeout,
        "reset": f.reset,
        "timeout_seconds": f.timeout_seconds,
    }


@router.put("/faults")
async def put_faults(state: StateDep, body: FaultsBody) -> dict[str, Any]:
    """Replace the fault configuration (all zero turns faults off)."""
    with state.lock:
        state.faults = Faults(
            body.rate_429, body.rate_500, body.timeout, body.reset, body.timeout_seconds
        )
        if body.seed is not None:
            state.rng.seed(body.seed)
            state.fault_rng.seed(body.seed)
    return await get_faults(state)


@router.post("/reset")
async def reset(state: StateDep) -> dict[str, Any]:
    """Back to the start state (the webhook URL and signing key are kept)."""
    state.reset()
    return {"ok": True}


@router.post("/locations", status_code=201)
async def add_location(state: StateDep, body: NewLocation) -> dict[str, Any]:
    """Add a location; answers its id, Private Integration token and calendar id."""
    if body.id is not None and body.id in state.locations:
        raise SandboxError(409, f"Location {body.id} already exists")
    d = state.default_limits
    limits = Limits(body.burst or d.burst, body.interval_ms or d.interval_ms, body.daily or d.daily)
    location, token = state.add_location(body.id, token=body.token, limits=limits, name=body.name)
    location.allow_duplicate_contact = body.allow_duplicate_contact
    location.duplicate_priority = tuple(body.duplicate_priority)
    return _describe(location, token)


@router.patch("/locations/{location_id}")
async def change_location(
    state: StateDep, location_id: str, body: LocationSettings
) -> dict[str, Any]:
    """Change a location's duplicate rule or limits."""
    with state.lock:
        location = state.locations.get(location_id)
        if location is None:
            raise not_found("Location")
        given = body.model_dump(exclude_unset=True)
        if "allow_duplicate_contact" in given:
            location.allow_duplicate_contact = bool(given["allow_duplicate_contact"])
        if given.get("duplicate_priority"):
            location.duplicate_priority = tuple(given["duplicate_priority"])
        for name in ("burst", "interval_ms", "daily"):
            if given.get(name):
                setattr(location.limits, name, given[name])
        return _describe(location, None)


def _describe(location: Location, token: str | None) -> dict[str, Any]:
    out = {
        "id": location.id,
        "locationId": location.id,
        "calendarId": calendar_id_of(location),
        "companyId": location.company_id,
        "userId": next(iter(location.users)),
        "allow_duplicate_contact": location.allow_duplicate_contact,
        "duplicate_priority": list(location.duplicate_priority),
        "burst": location.limits.burst,
        "interval_ms": location.limits.interval_ms,
        "daily": location.limits.daily,
    }
    return {**out, "token": token} if token else out


@router.get("/state")
async def dump(state: StateDep) -> dict[str, Any]:
    """Every location's contacts, tasks, notes and appointments."""
    with state.lock:
        return {"locations": {lid: dump_location(loc) for lid, loc in state.locations.items()}}


def dump_location(location: Location) -> dict[str, Any]:
    """One location's records as JSON."""
    return {
        "contacts": [public(c) for c in location.contacts.values()],
        "tasks": [public(t) for t in location.tasks.values()],
        "notes": [public(n) for n in location.notes.values()],
        "appointments": [public(a) for a in location.appointments.values()],
    }


@router.put("/webhooks")
async def set_webhooks(state: StateDep, body: WebhookTarget) -> dict[str, Any]:
    """Configure the URL webhook events are POSTed to."""
    state.webhook_url = body.url
    return {"url": state.webhook_url}


@router.get("/webhooks/deliveries")
async def deliveries(state: StateDep) -> list[dict[str, Any]]:
    """Webhook delivery attempts: event type, webhookId, status or error."""
    with state.lock:
        return list(state.webhook_deliveries)
