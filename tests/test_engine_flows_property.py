"""Property: whatever the order of changes and wherever answers get lost, GHL converges to the
last mapped state, with one contact, one task, and zero calls for a repeat."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghlsync.ghl._errors import OutcomeUnknownError
from ghlsync.store import create_engine, migrate
from tests._engine_flows_kit import CUSTOMER, Flow, _flow, flow_base_url, make_client
from tests._sandbox import InProcessSandbox

customer_step = st.fixed_dictionaries(
    {
        "kind": st.just("customer.updated"),
        "first_name": st.sampled_from(["Ann", "Anna", "Annie"]),
        "deal_stage": st.sampled_from(["Estimate", "Won", "Lost"]),
        "city": st.sampled_from(["Austin", "Dallas", ""]),
    }
)
task_step = st.fixed_dictionaries(
    {
        "kind": st.just("task.updated"),
        "task_title": st.sampled_from(["Call", "Call back", "Visit"]),
        "task_status": st.sampled_from(["open", "completed"]),
    }
)
steps = st.lists(
    st.tuples(st.one_of(customer_step, task_step), st.booleans()), min_size=1, max_size=8
)


class LossySandbox:
    """Forwards to the sandbox; when armed, loses the answer of the next write."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.armed = False

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if self.armed and request.method != "GET":
            self.armed = False
            raise httpx2.ReadTimeout("answer lost (test)", request=request)
        return response


def _payload(step: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in step.items() if k != "kind"}
    if step["kind"] == "task.updated":
        return {"customer_id": "C1", "task_id": "T1", "task_due": "2026-12-01", **fields}
    return {**CUSTOMER, **fields}


async def _scenario(
    flow: Flow, lossy: LossySandbox, plan: list[tuple[dict[str, Any], bool]]
) -> None:
    await flow.sync("customer.created", **CUSTOMER)
    last: dict[str, dict[str, Any]] = {}
    for step, lose in plan:
        lossy.armed = lose
        try:
            await flow.sync(step["kind"], **_payload(step))
        except OutcomeUnknownError:
            await flow.sync(step["kind"], **_payload(step))  # the queue's retry
        last[step["kind"]] = step
    lossy.armed = False
    [contact] = flow.records("contacts")
    customer = last.get("customer.updated")
    if customer:
        assert contact["firstName"] == customer["first_name"]
        deals = [t for t in contact["tags"] if t.startswith("deal:")]
        assert deals == [f"deal:{customer['deal_stage'].lower()}"]
    task = last.get("task.updated")
    if task:
        [ghl_task] = flow.records("tasks")
        assert ghl_task["title"] == task["task_title"]
        assert ghl_task["completed"] is (task["task_status"] == "completed")
    before = len(flow.requests())
    for kind, step in last.items():
        [*_, out] = await flow.sync(kind, **_payload(step))
        assert out.calls == 0, (kind, out)
    assert len(flow.requests()) == before


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flows-property")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_sync_converges_under_lost_answers(
    workdir: Path, plan: list[tuple[dict[str, Any], bool]]
) -> None:
    engine = create_engine(f"sqlite:///{workdir / uuid.uuid4().hex}.db")
    migrate(engine)
    sandbox = InProcessSandbox()
    lossy = LossySandbox(sandbox.transport())

    async def run() -> None:
        transport = httpx2.MockTransport(lossy.handle)
        async with make_client(flow_base_url(), sandbox.token, sandbox.location_id, transport) as c:
            flow = _flow(engine, sandbox.state, c, sandbox.location_id, sandbox.calendar_id)
            await _scenario(flow, lossy, plan)

    try:
        asyncio.run(run())
    finally:
        engine.dispose()
