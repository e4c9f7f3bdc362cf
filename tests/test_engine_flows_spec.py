"""Every request the flows send conforms to GHL's official OpenAPI specs."""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests._engine_flows_kit import CUSTOMER, Flow, with_transport
from tests._openapi import load_spec, request_errors
from tests._sandbox import InProcessSandbox

TASK = {"customer_id": "C1", "task_id": "T1", "task_title": "Call", "task_due": "2026-12-01"}
NOTE = {"customer_id": "C1", "note_id": "N1", "note_body": "Roof: metal"}
APPT = {"customer_id": "C1", "appointment_id": "A1", "appointment_start": "2026-12-02T15:00:00Z"}


def _family(path: str) -> str:
    if path.startswith("/calendars"):
        return "calendars"
    return "locations" if path.startswith("/locations") else "contacts"


async def test_flow_traffic_matches_the_official_specs(
    flow: Flow, sandbox_asgi: InProcessSandbox, ghl_spec_dir: Path
) -> None:
    sent: list[httpx2.Request] = []
    inner = sandbox_asgi.transport()

    async def record(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return await inner.handle_async_request(request)

    async with with_transport(flow, httpx2.MockTransport(record)) as f:
        await f.sync("customer.created", **{**CUSTOMER, "deal_stage": "Estimate"})
        await f.sync("customer.updated", **{**CUSTOMER, "city": "Austin", "deal_stage": "Won"})
        await f.sync("task.created", **TASK)
        await f.sync("task.updated", **{**TASK, "task_title": "Call again"})
        await f.sync("task.completed", **{**TASK, "task_title": "Call again"})
        await f.sync("note.created", **NOTE)
        await f.sync("note.updated", **{**NOTE, "note_body": "Roof: slate"})
        await f.sync("appointment.scheduled", **APPT)
        await f.sync("appointment.updated", **{**APPT, "appointment_title": "Estimate visit"})
        await f.sync("appointment.canceled", **APPT)
        await f.sync("task.deleted", customer_id="C1", task_id="T1")

    assert len(sent) == 14
    problems = {
        f"{r.method} {r.url.path}": request_errors(load_spec(ghl_spec_dir, _family(r.url.path)), r)
        for r in sent
    }
    assert {k: v for k, v in problems.items() if v} == {}
