"""Issue 12 §2: recipe timers on `/metrics`: waiting, overdue, fired and cancelled.

A real worker with a recipe that waits 3 days (`tests._recipes_kit`), on the in-process
sandbox and a fake clock; the gauges are read from the store as `serve` reads them at scrape
time, the counters are the process's (compared as growth over the test).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from ghlsync._clock import FakeClock
from ghlsync.server._queue_metrics import QueueCollector
from tests._metrics_kit import Samples, delta, parse, sync_now, value
from tests._recipes_kit import FOLLOW_UP, LEAD, rig
from tests._sandbox import InProcessSandbox

WAIT = 3 * 86400
TASK = {"customer_id": "C1", "task_id": "T1", "task_title": "Send estimate"}


def _scrape(engine: sa.Engine, clock: FakeClock) -> Samples:
    registry = CollectorRegistry()
    registry.register(QueueCollector(engine, clock=clock, ttl=0.0))
    return parse(generate_latest(registry).decode())


async def test_a_waiting_timer_shows_then_counts_overdue_then_fires(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    before = sync_now()
    loc = sandbox_asgi.location_id
    async with rig(flows_store, sandbox_asgi, [FOLLOW_UP]) as r:
        r.deliver("d1", "customer.created", **LEAD)
        r.deliver("d2", "task.completed", **TASK, task_status="completed")
        await r.drain()

        waiting = _scrape(flows_store, r.clock)
        assert value(waiting, "ghlsync_timers_pending", location=loc) == 1
        assert value(waiting, "ghlsync_timers_overdue", location=loc) == 0
        assert value(waiting, "ghlsync_timers_overdue_seconds", location=loc) == 0
        assert value(waiting, "ghlsync_queue_depth", location=loc) == 1  # a queue row too

        r.clock.advance(WAIT + 120)  # due two minutes ago; no worker has run since
        late = _scrape(flows_store, r.clock)
        assert value(late, "ghlsync_timers_pending", location=loc) == 0
        assert value(late, "ghlsync_timers_overdue", location=loc) == 1
        overdue = value(late, "ghlsync_timers_overdue_seconds", location=loc)
        assert overdue == pytest.approx(120, abs=2)

        await r.drain()
        assert r.tasks() == ["Follow up on the estimate", "Send estimate"]
        fired = _scrape(flows_store, r.clock)
    after = sync_now()

    for name in ("ghlsync_timers_pending", "ghlsync_timers_overdue"):
        assert value(fired, name, location=loc) == 0
    assert value(fired, "ghlsync_timers_overdue_seconds", location=loc) == 0
    assert delta(after, before, "ghlsync_timers_total", outcome="fired") == 1
    assert delta(after, before, "ghlsync_timers_total", outcome="cancelled") == 0
    assert delta(after, before, "ghlsync_timer_delay_seconds_count") == 1
    assert delta(after, before, "ghlsync_timer_delay_seconds_sum") == pytest.approx(120, abs=2)


async def test_runs_without_a_wait_are_not_timers_and_cancels_count(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    now_recipe = {**FOLLOW_UP, "name": "at-once"}
    del now_recipe["after"]
    loc = sandbox_asgi.location_id
    before = sync_now()
    async with rig(flows_store, sandbox_asgi, [FOLLOW_UP, now_recipe]) as r:
        r.deliver("d1", "customer.created", **LEAD)
        r.deliver("d2", "task.completed", **TASK, task_status="completed")
        await r.drain()  # at-once ran; the follow-up waits
        assert r.tasks() == ["Follow up on the estimate", "Send estimate"]
        waiting = _scrape(flows_store, r.clock)
        assert value(waiting, "ghlsync_timers_pending", location=loc) == 1
        r.clock.advance(86400)
        r.deliver("d3", "proposal.accepted", customer_id="C1", deal_id="D1")
        await r.drain()
        gone = _scrape(flows_store, r.clock)
    after = sync_now()

    assert value(gone, "ghlsync_timers_pending", location=loc) == 0
    assert delta(after, before, "ghlsync_timers_total", outcome="cancelled") == 1
    assert delta(after, before, "ghlsync_timers_total", outcome="fired") == 0  # no wait: no timer
    assert delta(after, before, "ghlsync_timer_delay_seconds_count") == 0
