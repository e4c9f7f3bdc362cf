"""Test-only app install and uninstall: `POST /_sandbox/install` and `/_sandbox/uninstall`.

Each emits GHL's signed `INSTALL` / `UNINSTALL` webhook (shapes of
`ghl-api/docs/webhook-events/AppInstall.md` and `AppUninstall.md`, plus `webhookId` and
`timestamp`) to the configured webhook URL, waits for the delivery, and answers the event and
the delivery's outcome. An install naming a location that does not exist creates it (in the
given company); an uninstall revokes the app's OAuth tokens for that location, as GHL does.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from ghlsync.sandbox._deps import StateDep
from ghlsync.sandbox._errors import SandboxError
from ghlsync.sandbox._records import now_iso
from ghlsync.sandbox._state import (
    DEFAULT_APP_ID,
    DEFAULT_COMPANY_ID,
    Principal,
    Record,
    SandboxState,
)
from ghlsync.sandbox._webhooks import WebhookDispatcher

router = APIRouter(prefix="/_sandbox")


class AppEvent(BaseModel):
    """Who installs or uninstalls: a location (location level) or only a company (agency)."""

    model_config = ConfigDict(extra="forbid")

    locationId: str | None = None
    companyId: str | None = None
    name: str | None = None


@router.post("/install")
async def install(state: StateDep, request: Request, body: AppEvent) -> dict[str, Any]:
    """Emit a signed INSTALL (creating the location first when it is new)."""
    company = body.companyId or DEFAULT_COMPANY_ID
    with state.lock:
        if body.locationId is not None:
            _ensure_location(state, body.locationId, company, body.name)
        event = _event(state, "INSTALL", body.locationId, company)
        if body.locationId is not None:
            event["userId"] = next(iter(state.locations[body.locationId].users))
    return await _deliver(request, state, event)


@router.post("/uninstall")
async def uninstall(state: StateDep, request: Request, body: AppEvent) -> dict[str, Any]:
    """Revoke the app's OAuth tokens for the location(s), then emit a signed UNINSTALL."""
    if body.locationId is None and body.companyId is None:
        raise SandboxError(422, ["locationId or companyId should not be empty"])
    with state.lock:
        _revoke_tokens(state, body.locationId, body.companyId)
        event = _event(state, "UNINSTALL", body.locationId, body.companyId)
    return await _deliver(request, state, event)


def _ensure_location(state: SandboxState, location_id: str, company: str, name: str | None) -> None:
    if location_id in state.locations:
        return
    location, pit = state.add_location(location_id, name=name)
    location.company_id = company
    state.tokens[pit] = Principal(pit, "Location", company, location_id, "pit", None)


def _event(
    state: SandboxState, kind: str, location_id: str | None, company_id: str | None
) -> Record:
    event: Record = {"type": kind, "appId": DEFAULT_APP_ID}
    if location_id is not None:
        event["locationId"] = location_id
    if company_id is not None:
        event["companyId"] = company_id
    event["webhookId"] = str(uuid.UUID(int=state.rng.getrandbits(128), version=4))
    event["timestamp"] = now_iso(state)
    return event


def _revoke_tokens(state: SandboxState, location_id: str | None, company_id: str | None) -> None:
    def gone(p: Principal) -> bool:
        if p.kind != "oauth":
            return False
        if location_id is not None:
            return p.location_id == location_id
        return p.company_id == company_id and p.location_id is not None

    state.tokens = {token: p for token, p in state.tokens.items() if not gone(p)}


async def _deliver(request: Request, state: SandboxState, event: Record) -> dict[str, Any]:
    if not state.webhook_url:
        raise SandboxError(409, "No webhook URL configured: PUT /_sandbox/webhooks first")
    dispatcher: WebhookDispatcher = request.app.state.webhooks
    dispatcher.publish(event)
    await dispatcher.drain()
    with state.lock:
        sent = [d for d in state.webhook_deliveries if d["webhookId"] == event["webhookId"]]
    return {"event": event, "delivery": sent[-1] if sent else None}
