"""The Zapier Catch Hooks, one per write-back action: `POST /dripjobs/hooks/catch/<action>`.

Each request passes, in order: the injected fault (429/500 answered before anything runs),
the Standard Webhooks signature (401), the webhook-id dedupe (a repeat answers 200 and does
nothing), the body (400), the action on the model, the triggers it fires (queued, never
awaited), then the "timeout" fault (the write happened, the answer comes too late).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ghlsync.sandbox.dripjobs._firing import TriggerFirer
from ghlsync.sandbox.dripjobs._signature import SignatureError, key_of, verify
from ghlsync.sandbox.dripjobs._state import DripJobsState
from ghlsync.sandbox.dripjobs._writebacks import ACTIONS

router = APIRouter(prefix="/dripjobs/hooks/catch")


@router.post("/{action}")
async def catch(action: str, request: Request) -> JSONResponse:
    """Receive one write-back, as the user's Zap would, and run its DripJobs action."""
    state: DripJobsState = request.app.state.dripjobs
    firer: TriggerFirer = request.app.state.dripjobs_firer
    if action not in ACTIONS:
        return _refuse(404, f"no catch hook for {action!r}; hooks: {', '.join(ACTIONS)}")
    body = await request.body()
    with state.lock:
        state.counts["requests"] += 1
        fault = state.faults.draw(state.rng)
        if fault:
            state.injected[fault] += 1
    if fault == "429":
        headers = {"retry-after": str(state.faults.retry_after)}
        return JSONResponse({"status": "throttled"}, status_code=429, headers=headers)
    if fault == "500":
        return _refuse(500, "injected server error")
    answer = _receive(state, firer, action, request, body)
    if fault == "timeout":
        await state.clock.sleep(state.faults.timeout_seconds)
    return answer


def _receive(
    state: DripJobsState, firer: TriggerFirer, action: str, request: Request, body: bytes
) -> JSONResponse:
    settings = state.settings
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        webhook_id = verify(
            key_of(settings.writeback_secret),
            headers,
            body,
            now=state.clock.now(),
            tolerance=settings.timestamp_tolerance,
        )
    except SignatureError as exc:
        with state.lock:
            state.counts["bad_signatures"] += 1
        return _refuse(401, str(exc))
    with state.lock:
        entry = state.seen.get(webhook_id)
        if entry is not None:
            state.counts["duplicate_webhook_ids"] += 1
            entry["repeats"] += 1
            return _accepted(entry)
        parsed = _parse(body, action)
        if isinstance(parsed, str):
            return _refuse(400, parsed)
        entry, events = _apply(state, action, webhook_id, parsed)
    for event, fields in events:
        firer.fire(event, fields)
    return _accepted(entry)


def _parse(body: bytes, action: str) -> dict[str, Any] | str:
    """The write-back's `data`, or what is wrong with the body."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        return f"the body is not JSON: {exc}"
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        return 'the body must be {"type": ..., "id": ..., "timestamp": ..., "data": {...}}'
    if document.get("type") != action:
        return f"type {document.get('type')!r} was posted to the {action!r} hook"
    data: dict[str, Any] = document["data"]
    return data


def _apply(
    state: DripJobsState, action: str, webhook_id: str, data: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, dict[str, str]]]]:
    """Run the action on the model and log it (the caller holds the lock)."""
    now = state.clock.now()
    outcome = ACTIONS[action](state.model, data, now)
    entry: dict[str, Any] = {
        "webhook_id": webhook_id,
        "received_at": now,
        "action": action,
        "data": data,
        "changed": outcome.changed,
        "record_id": outcome.record_id,
        "error": outcome.error,
        "fired": [event for event, _ in outcome.events],
        "repeats": 0,
        "zap_run": str(uuid.uuid4()),
    }
    state.seen[webhook_id] = entry
    state.writebacks.append(entry)
    state.counts["applied"] += 1
    state.by_action[action] += 1
    if outcome.error:
        state.counts["errors"] += 1
    elif not outcome.changed:
        state.counts["no_change"] += 1
    return entry, outcome.events


def _accepted(entry: dict[str, Any]) -> JSONResponse:
    """What a Zapier Catch Hook answers (the run ids stay the same for a repeat)."""
    run = entry["zap_run"]
    return JSONResponse({"attempt": run, "id": run, "request_id": run, "status": "success"})


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status)
