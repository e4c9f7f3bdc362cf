"""The calls-per-change benchmark's parts: the trace's change count and the naive baseline."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ghlsync.ghl import GHLClient, StaticTokens
from ghlsync.mapping import AppConfig, Mapper
from ghlsync.sandbox import (
    DEFAULT_CALENDAR_ID,
    DEFAULT_LOCATION_ID,
    DEFAULT_TOKEN,
    SandboxState,
    create_app,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from _naive import NaiveFlow
from _trace import (
    Trace,
    TraceDelivery,
    build_trace,
    counts,
    diff_snapshots,
    iter_changes,
    model_snapshot,
    replay_model,
    sandbox_snapshot,
)

IDENT = {"customer_id": "c1", "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"}
TASK = {**IDENT, "task_id": "t1", "task_title": "Call back", "task_due": "2026-12-02"}


def _trace(*steps: tuple[str, dict[str, Any], str]) -> Trace:
    return Trace([TraceDelivery(e, p, d, "c1", "real") for e, p, d in steps])


def test_changes_are_counted_on_ghl_state_not_on_deliveries() -> None:
    trace = _trace(
        ("lead.created", {**IDENT, "lead_source": "Google"}, "d1"),  # create: 1
        ("lead.created", {**IDENT, "lead_source": "Google"}, "d1"),  # duplicate: 0
        ("customer.updated", {**IDENT, "lead_source": "Google"}, "d2"),  # no-op: 0
        ("customer.updated", {**IDENT, "last_name": "Lee-Ray"}, "d3"),  # real: 1
        ("deal.stage_changed", {**IDENT, "last_name": "Lee-Ray", "deal_stage": "Won"}, "d4"),
        ("deal.stage_changed", {**IDENT, "last_name": "Lee-Ray", "deal_stage": "Won"}, "d5"),
        ("task.created", {**TASK, "last_name": "Lee-Ray", "task_status": "open"}, "d6"),
        ("task.completed", {**TASK, "last_name": "Lee-Ray", "task_status": "completed"}, "d7"),
        ("task.updated", {**TASK, "last_name": "Lee-Ray", "task_status": "completed"}, "d8"),
    )
    mapper = Mapper(AppConfig.default())
    per_delivery = [n for _, n in iter_changes(trace, mapper)]
    assert per_delivery == [1, 0, 0, 1, 1, 0, 1, 1, 0]
    model, changes = replay_model(trace, mapper)
    assert changes == 5
    assert model.contacts["c1"].tags == {"lead", "source:google", "deal:won"}


def test_trace_has_the_exact_mix_and_each_real_delivery_is_one_change() -> None:
    trace = build_trace(40, seed=3)
    total = len(trace.deliveries)
    assert abs(trace.count("noop") - 0.30 * total) <= 1
    assert abs(trace.count("duplicate") - 0.10 * total) <= 1
    kinds: Counter[tuple[str, int]] = Counter(
        (d.kind, n) for d, n in iter_changes(trace, Mapper(AppConfig.default()))
    )
    assert set(kinds) == {("real", 1), ("noop", 0), ("duplicate", 0)}
    events = {d.event for d in trace.deliveries}
    assert {
        "deal.stage_changed",
        "task.completed",
        "note.updated",
        "appointment.canceled",
    } <= events


def test_a_duplicate_comes_before_its_customers_next_event() -> None:
    trace = build_trace(30, seed=5)
    last_of: dict[str, str] = {}  # customer -> delivery id of its latest delivery
    for d in trace.deliveries:
        if d.kind == "duplicate":
            assert last_of[d.customer_id] == d.delivery_id
        last_of[d.customer_id] = d.delivery_id


@pytest.fixture
def lifted_sandbox() -> SandboxState:
    """A sandbox whose rate limit the naive flow cannot reach."""
    return SandboxState(burst=10**9, interval_ms=1000, daily=10**9)


async def test_naive_flow_ends_in_the_state_the_trace_implies(
    lifted_sandbox: SandboxState,
) -> None:
    trace = build_trace(12, seed=2)
    mapper = Mapper(AppConfig.default())
    model, changes = replay_model(trace, mapper)
    client = GHLClient(
        tokens=StaticTokens({DEFAULT_LOCATION_ID: DEFAULT_TOKEN}),
        transport=httpx2.ASGITransport(app=create_app(lifted_sandbox)),
    )
    flow = NaiveFlow(client, mapper, DEFAULT_LOCATION_ID, DEFAULT_CALENDAR_ID)
    async with client:
        for item in trace.deliveries:
            await flow.handle(item.event, item.payload)

    location = lifted_sandbox.location(DEFAULT_LOCATION_ID)
    assert location is not None
    expected, got = model_snapshot(model), sandbox_snapshot(location)
    assert diff_snapshots(expected, got) == []
    email = next(iter(got))
    got[email]["tags"] = [*got[email]["tags"], "by-hand"]
    assert diff_snapshots(expected, got) == [
        f"{email}: tags: {expected[email]['tags']!r} != {got[email]['tags']!r}"
    ]
    assert counts(got)["contacts"] == 12 and counts(got)["tasks"] > 0
    log = lifted_sandbox.requests
    assert all(r["status"] < 400 for r in log)
    searches = sum(1 for r in log if r["path"] == "/contacts/search/duplicate")
    assert searches == len(trace.deliveries)  # one "Find Contact" per delivery, duplicates too
    assert len(log) >= 2 * changes


async def test_ghlsync_side_of_the_bench_reaches_the_same_state_with_fewer_calls(
    database_url: str,
) -> None:
    import bench_calls_per_change as bench

    trace = build_trace(6, seed=4)
    mapper = Mapper(bench.bench_config())
    model, changes = replay_model(trace, mapper)
    ours = await bench.run_ghlsync(trace, mapper, database_url, live=True, label="ghlsync")
    naive = await bench.run_naive(trace, mapper)
    bench.check_states([ours, naive], model_snapshot(model))
    assert ours.problems == [] and naive.problems == []
    assert ours.dead == 0 and ours.throttled == 0
    assert ours.routes["GET /contacts/search/duplicate"] == 0  # no lookups before writes
    assert changes <= ours.calls < naive.calls
