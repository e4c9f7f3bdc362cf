"""Recipes end to end: deliveries in, the worker runs the flows, then the recipes, once."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

import ghlsync.engine.flows.recipes
from ghlsync.cli import app
from ghlsync.engine import accept
from ghlsync.engine.flows.recipes import timer_status
from ghlsync.engine.flows.to_dripjobs._events import ghl_delivery
from ghlsync.store import begin_immediate
from ghlsync.store._tables_engine import work_items
from tests._recipes_kit import FOLLOW_UP, LEAD, ONBOARDING, START, rig
from tests._sandbox import InProcessSandbox


async def test_onboarding_runs_once_under_duplicates_and_retries(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    async with rig(flows_store, sandbox_asgi, [ONBOARDING]) as r:
        r.deliver("d1", "lead.created", **LEAD)
        r.deliver("d1", "lead.created", **LEAD)  # the same delivery again: deduplicated
        await r.drain()
        r.deliver("d2", "customer.updated", **LEAD)  # not a trigger of the recipe
        await r.drain()

        assert r.tasks() == ["Call Ann within 5 minutes", "Send estimate"]
        [contact] = r.location().contacts.values()
        assert "new-lead" in contact["tags"]
        assert len(contact["_workflows"]) == 1
        assert r.calls("POST", "/workflow/") == 1
        assert r.calls("POST", "/tasks") == 2
        assert r.waiting() == [("done", START)]


async def test_conditions_keep_other_leads_out(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    async with rig(flows_store, sandbox_asgi, [ONBOARDING]) as r:
        r.deliver("d1", "lead.created", **{**LEAD, "lead_source": "Yelp"})
        await r.drain()
        assert r.tasks() == []
        assert r.waiting() == []


async def test_reminder_fires_after_its_wait(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    task = {"customer_id": "C1", "task_id": "T1", "task_title": "Send estimate"}
    async with rig(flows_store, sandbox_asgi, [FOLLOW_UP]) as r:
        r.deliver("d1", "customer.created", **LEAD)
        r.deliver("d2", "task.completed", **task, task_status="completed")
        await r.drain()
        assert r.tasks() == ["Send estimate"]
        [(status, due)] = r.waiting()
        assert (status, due) == ("pending", START + 3 * 86400)
        r.clock.advance(3 * 86400 - 60)
        await r.drain()
        assert r.tasks() == ["Send estimate"]  # not yet due
        r.clock.advance(60)
        await r.drain()
        assert r.tasks() == ["Follow up on the estimate", "Send estimate"]


async def test_reminder_is_cancelled_by_its_unless_trigger(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    task = {"customer_id": "C1", "task_id": "T1", "task_title": "Send estimate"}
    async with rig(flows_store, sandbox_asgi, [FOLLOW_UP]) as r:
        r.deliver("d1", "customer.created", **LEAD)
        r.deliver("d2", "task.completed", **task, task_status="completed")
        await r.drain()
        r.clock.advance(86400)
        r.deliver("d3", "proposal.accepted", customer_id="C1", deal_id="D1")
        await r.drain()
        assert [s for s, _ in r.waiting()] == ["done"]
        r.clock.advance(5 * 86400)
        await r.drain()
        assert r.tasks() == ["Send estimate"]


async def test_status_shows_waiting_timers(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox, tmp_path: Path
) -> None:
    task = {"customer_id": "C1", "task_id": "T1", "task_title": "Send estimate"}
    async with rig(flows_store, sandbox_asgi, [FOLLOW_UP]) as r:
        r.deliver("d1", "customer.created", **LEAD)
        r.deliver("d2", "task.completed", **task, task_status="completed")
        await r.drain()
    [row] = timer_status(flows_store, START)
    assert (row.location_id, row.waiting, row.next_due) == (
        sandbox_asgi.location_id,
        1,
        START + 3 * 86400,
    )
    (tmp_path / "ghlsync.yaml").write_text("{}\n")
    url = flows_store.url.render_as_string(hide_password=False)
    env = {"GHLSYNC_DATABASE_URL": url, "GHLSYNC_CONFIG": str(tmp_path / "ghlsync.yaml")}
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    # `status` reads the wall clock, for which the fake clock's timer is long past due.
    assert json.loads(shown.output)["recipe_timers"] == []
    assert timer_status(flows_store, START + 3 * 86400) == []
    due = time.time() + 3600
    with flows_store.begin() as conn:
        conn.execute(sa.update(work_items).values(available_at=due))
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["status", "--json"], env=env)
    [timer] = json.loads(shown.output)["recipe_timers"]
    assert (timer["waiting"], timer["next_due"]) == (1, due)
    text = await asyncio.to_thread(CliRunner().invoke, app, ["status"], env=env)
    assert "Recipe timers" in text.output


def test_recipes_exports() -> None:
    names = ghlsync.engine.flows.recipes.__all__
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(ghlsync.engine.flows.recipes, name) is not None, name
    assert {"ACTIONS", "TRIGGERS", "ActionSpec", "TriggerSpec", "InputSpec"} <= set(names)


async def test_a_ghl_event_starts_a_recipe_once(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    vip = {
        "name": "vip-call",
        "when": {"trigger": "ghl.ContactTagUpdate", "tags": {"contains": "vip"}},
        "do": [{"create_task": {"title": "Call our VIP {first_name}", "due": "+1d 09:00"}}],
    }
    async with rig(flows_store, sandbox_asgi, [vip]) as r:
        r.deliver("d1", "customer.created", **LEAD)
        await r.drain()
        [contact] = r.location().contacts.values()
        event = {
            "type": "ContactTagUpdate",
            "locationId": sandbox_asgi.location_id,
            "id": contact["id"],
            "firstName": "Ann",
            "tags": ["vip"],
            "webhookId": "w1",
            "timestamp": "2023-11-14T22:13:00Z",
        }
        for _ in range(2):  # GHL retried it
            delivery = ghl_delivery(event, received_at=START - 10)
            with begin_immediate(flows_store) as conn:
                accept(conn, delivery)
        await r.drain()
        assert r.tasks() == ["Call our VIP Ann"]
        [task] = r.location().tasks.values()
        assert task["contactId"] == contact["id"]


async def test_an_old_completion_synced_again_cancels_no_newer_wait(
    flows_store: sa.Engine, sandbox_asgi: InProcessSandbox
) -> None:
    nudge = {
        "name": "nudge",
        "when": {"trigger": "dripjobs.lead.created"},
        "do": [{"create_task": {"title": "Nudge {first_name}", "due": "+0d 10:00"}}],
        "after": {"wait": "3d", "unless": "dripjobs.task.completed"},
    }
    task = {"customer_id": "C1", "task_id": "T1", "task_title": "Measure"}
    async with rig(flows_store, sandbox_asgi, [nudge]) as r:
        r.deliver("d1", "customer.created", **LEAD)
        r.deliver("d2", "task.completed", **task, task_status="completed")
        await r.drain()
        r.clock.advance(3600)
        r.deliver("d3", "lead.created", **LEAD)  # starts the wait, after the completion
        await r.drain()
        r.clock.advance(3600)
        r.deliver("d4", "task.updated", **{**task, "task_title": "Measure twice"})
        await r.drain()  # the task's sticky completion runs again: not a new completion
        assert [s for s, _ in r.waiting()] == ["pending"]
        r.clock.advance(3 * 86400)
        await r.drain()
        assert r.tasks() == ["Measure twice", "Nudge Ann"]
