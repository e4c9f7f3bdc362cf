"""`record` shows a person's deal cards with their state on each side, and their waiting recipe
runs (durable timers) under pending work (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from ghlsync.engine.flows.recipes._schedule import PlannedRun, queue_runs
from ghlsync.records import lookup
from tests._twoway_kit import TwoWay
from tests.test_twoway_opportunity import _card_at, _fresh_pipelines  # noqa: F401


async def test_record_shows_the_deal_card_on_both_sides(tw: TwoWay) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")

    result = await lookup(tw.engine, tw.config, "dj_c_1")

    assert result.record is not None
    [opportunity] = [c for c in result.record["children"] if c["type"] == "opportunity"]
    assert (opportunity["dripjobs_id"], opportunity["ghl_id"]) == ("deal:dj_c_1", card["id"])
    assert opportunity["state"] == "synced"
    assert opportunity["dripjobs"]["pipelineStageId"] == stages["Estimate booked"]


async def test_record_shows_waiting_recipe_runs_with_their_due_time(tw: TwoWay) -> None:
    tw.dripjobs("customer.created", "dj_t", first_name="Tess", email="tess@x.io")
    await tw.settle()
    due = tw.clock.now() + 86_400
    payload: dict[str, Any] = {"recipe": "follow-up", "trigger": "dripjobs.customer.created",
               "instance": "d1", "customer_id": "dj_t", "ghl_contact_id": None,
               "fields": {}, "base_at": tw.clock.now()}  # fmt: skip
    run = PlannedRun("follow-up", "dripjobs.customer.created", "d1", "dj_t", due, payload)
    other = PlannedRun("follow-up", "dripjobs.customer.created", "d2", "dj_x", due,
                       {**payload, "instance": "d2", "customer_id": "dj_x"})  # fmt: skip
    queue_runs(tw.engine, tw.sandbox.location_id, [run, other], tw.clock.now())

    result = await lookup(tw.engine, tw.config, "tess@x.io")

    assert result.record is not None
    timers = [p for p in result.record["pending"] if p["direction"] == "recipe"]
    assert [(t["entity"], t["status"], t["due_at"]) for t in timers] == [
        ("recipe:follow-up", "pending", due)
    ]
