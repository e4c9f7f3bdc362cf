"""Two-way sync, deal cards: a card moved in GHL → one move_deal with the DripJobs stage name;
our own upsert's webhook writes nothing back; DripJobs' deal.stage_changed for our move_deal
writes nothing to GHL (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync.engine.flows.to_ghl._pipelines import forget_pipelines
from ghlsync.mapping._opportunity_settings import OpportunitySettings
from ghlsync.store._tables_sync import ghl_pipelines
from ghlsync.store._tables_twoway import ghl_changes
from tests._twoway_kit import TwoWay

SETTINGS = OpportunitySettings(
    deal_pipeline="Sales pipeline",
    deal_stages={"Estimate Scheduled": "Estimate booked", "Proposal Approved": "Won"},
)


@pytest.fixture(autouse=True)
def _fresh_pipelines() -> Iterator[None]:
    forget_pipelines()  # lists kept without a store are per process
    yield
    forget_pipelines()


async def _card_at(tw: TwoWay, stage: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A DripJobs customer whose deal is at `stage`, synced to a GHL card. The pipeline is
    all this user wants: the preset's `deal:` tag rule is deleted (docs/pipelines.md)."""
    tags = [t for t in tw.config.tags if t.source != "deal_stage"]
    tw.reconfigure(tw.config.model_copy(update={"opportunities": SETTINGS, "tags": tags}))
    tw.dripjobs("customer.created", "dj_c_1", first_name="Ann", email="ann@x.io")
    tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage="New lead",
                email="ann@x.io", updated_at=1_800_000_010.0)  # fmt: skip
    await tw.settle()
    location = tw.sandbox.state.location(tw.sandbox.location_id)
    assert location is not None
    [card] = location.opportunities.values()
    stages = {s["name"]: s["id"] for s in location.pipelines[card["pipelineId"]]["stages"]}
    if stage != "New lead":
        tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage=stage,
                    email="ann@x.io", updated_at=1_800_000_020.0)  # fmt: skip
        await tw.settle()
    return card, stages


async def test_our_own_upserts_are_not_written_back(tw: TwoWay) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")
    assert card["pipelineStageId"] == stages["Estimate booked"]
    taken = [r for r in tw.sandbox.state.requests if r.get("path") == "/opportunities/upsert"]
    assert len(taken) == 2, "the stage change did not reach GHL"
    assert tw.outbox() == [] and tw.hook.received == [], "our own card move was written back"


async def test_a_card_moved_in_ghl_moves_the_deal_once_and_its_echo_writes_nothing(
    tw: TwoWay,
) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")
    contact_id = tw.ghl_contacts()[0]["id"]
    await tw.ghl_user("PUT", f"/opportunities/{card['id']}", {"pipelineStageId": stages["Won"]})
    stage_events = [e for e in tw.ghl_events if e["type"] == "OpportunityStageUpdate"]
    assert stage_events, "the sandbox sent no OpportunityStageUpdate"
    tw.ghl(dict(stage_events[0]))  # GHL retries its webhook: same webhookId
    await tw.settle()
    (move,) = tw.hook.applied.values()
    assert move["type"] == "move_deal"
    assert move["data"] == {
        "ghl_contact_id": contact_id,
        "ghl_opportunity_id": card["id"],
        "email": "ann@x.io",
        "stage": "Proposal Approved",  # the DripJobs name of GHL's "Won"
    }
    # DripJobs applies the move and fires deal.stage_changed (as the emulator does).
    writes = tw.ghl_writes()
    tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage="Proposal Approved",
                email="ann@x.io", updated_at=1_800_000_030.0)  # fmt: skip
    await tw.settle()
    assert tw.ghl_writes() == writes, "the move_deal echo wrote to GHL"
    assert len(tw.hook.applied) == 1
    # A later DripJobs move still reaches GHL (the echo rule did not stick).
    tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage="Estimate Scheduled",
                email="ann@x.io", updated_at=1_800_000_040.0)  # fmt: skip
    await tw.settle()
    location = tw.sandbox.state.location(tw.sandbox.location_id)
    assert location is not None
    assert location.opportunities[card["id"]]["pipelineStageId"] == stages["Estimate booked"]
    assert len(tw.hook.applied) == 1, "our own upsert came back as a move_deal"


def _pipeline_reads(tw: TwoWay) -> int:
    return sum(1 for r in tw.sandbox.state.requests if r.get("path") == "/opportunities/pipelines")


async def _move_to_won(tw: TwoWay, card: dict[str, Any], stages: dict[str, str]) -> None:
    await tw.ghl_user("PUT", f"/opportunities/{card['id']}", {"pipelineStageId": stages["Won"]})
    await tw.settle()
    (move,) = tw.hook.applied.values()
    assert (move["type"], move["data"]["stage"]) == ("move_deal", "Proposal Approved")


async def test_after_a_restart_the_kept_pipelines_name_a_moved_card_stage(tw: TwoWay) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")
    forget_pipelines()  # a new process: nothing in memory, the store still has the list
    reads = _pipeline_reads(tw)
    await _move_to_won(tw, card, stages)
    assert _pipeline_reads(tw) == reads, "the kept list was not used"


async def test_a_card_moved_before_anything_read_the_pipelines_is_still_written_back(
    tw: TwoWay,
) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")
    forget_pipelines()
    with tw.engine.begin() as conn:  # a store that never read them (fresh, or before 0015)
        conn.execute(ghl_pipelines.delete())
    reads = _pipeline_reads(tw)
    await _move_to_won(tw, card, stages)
    assert _pipeline_reads(tw) == reads + 1  # read once, then kept
    with tw.engine.connect() as conn:
        assert conn.execute(ghl_pipelines.select()).first() is not None


async def test_without_pipelines_a_card_move_is_not_written_back(tw: TwoWay) -> None:
    card, stages = await _card_at(tw, "New lead")
    tw.reconfigure(tw.config.model_copy(update={"opportunities": OpportunitySettings()}))
    await tw.ghl_user("PUT", f"/opportunities/{card['id']}", {"pipelineStageId": stages["Won"]})
    await tw.settle()
    assert tw.hook.received == [] and tw.outbox() == []


def test_catalog_names_the_card_way_back(tw: TwoWay) -> None:
    from ghlsync.cli._catalog import directions

    assert "opportunity" not in {row["entity"] for row in directions(tw.config)}
    rows = directions(tw.config.model_copy(update={"opportunities": SETTINGS}))
    [card] = [row for row in rows if row["entity"] == "opportunity"]
    assert [(o["ghl_event"], o["writeback"]) for o in card["ghl_to_dripjobs"]] == [
        ("OpportunityStageUpdate", "move_deal"),
        ("OpportunityStatusUpdate", "move_deal"),
    ]


# -- a status set in GHL (deal_statuses) ------------------------------------------------------

WITH_STATUSES = SETTINGS.model_copy(
    update={
        "deal_stages": {**SETTINGS.deal_stages, "Proposal Rejected": "Lost"},
        "deal_statuses": {"won": "Proposal Approved", "lost": "Proposal Rejected"},
    }
)


def _with_statuses(tw: TwoWay) -> None:
    tw.reconfigure(tw.config.model_copy(update={"opportunities": WITH_STATUSES}))


async def test_a_status_set_in_ghl_moves_the_deal_once_and_its_echo_writes_nothing(
    tw: TwoWay,
) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")
    _with_statuses(tw)
    contact_id = tw.ghl_contacts()[0]["id"]
    await tw.ghl_user("PUT", f"/opportunities/{card['id']}/status", {"status": "won"})
    status_events = [e for e in tw.ghl_events if e["type"] == "OpportunityStatusUpdate"]
    assert [e["status"] for e in status_events] == ["won"]
    assert not [e for e in tw.ghl_events if e["type"] == "OpportunityStageUpdate"]
    tw.ghl(dict(status_events[0]))  # GHL retries its webhook: same webhookId
    await tw.settle()
    (move,) = tw.hook.applied.values()
    assert move["type"] == "move_deal"
    assert move["data"] == {
        "ghl_contact_id": contact_id,
        "ghl_opportunity_id": card["id"],
        "email": "ann@x.io",
        "stage": "Proposal Approved",  # deal_statuses.won
    }
    # DripJobs applies the move and fires deal.stage_changed: GHL holds the status already;
    # the card only follows to the stage deal_stages names, and that upsert's webhook is ours.
    upserts = _upserts(tw)
    tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage="Proposal Approved",
                email="ann@x.io", updated_at=1_800_000_030.0)  # fmt: skip
    await tw.settle()
    location = tw.sandbox.state.location(tw.sandbox.location_id)
    assert location is not None
    moved = location.opportunities[card["id"]]
    assert (moved["pipelineStageId"], moved["status"]) == (stages["Won"], "won")
    assert _upserts(tw) == upserts + 1
    assert len(tw.hook.applied) == 1, "the answer to our move_deal was written back"


async def test_our_own_status_writes_are_not_written_back(tw: TwoWay) -> None:
    card, _ = await _card_at(tw, "Estimate Scheduled")
    _with_statuses(tw)
    tw.dripjobs("proposal.rejected", "dj_c_1", deal_id="dj_d_1", deal_stage="Estimate Scheduled",
                email="ann@x.io", updated_at=1_800_000_030.0)  # fmt: skip
    await tw.settle()
    tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage="New lead",
                email="ann@x.io", updated_at=1_800_000_040.0)  # fmt: skip
    await tw.settle()
    location = tw.sandbox.state.location(tw.sandbox.location_id)
    assert location is not None
    assert location.opportunities[card["id"]]["status"] == "open"  # lost, then reopened
    sent = [r for r in tw.sandbox.state.requests if r.get("path") == "/opportunities/upsert"]
    assert len(sent) == 4, "expected: new card, stage, lost, reopen"
    assert tw.outbox() == [] and tw.hook.received == [], "our own status write was written back"


async def test_a_status_deal_statuses_does_not_map_is_kept_not_written_back(tw: TwoWay) -> None:
    card, _ = await _card_at(tw, "Estimate Scheduled")
    _with_statuses(tw)
    await tw.ghl_user("PUT", f"/opportunities/{card['id']}/status", {"status": "abandoned"})
    await tw.settle()
    assert tw.outbox() == [] and tw.hook.received == []
    with tw.engine.connect() as conn:  # kept for `ghlsync status`
        kept = [json.loads(r.detail) for r in conn.execute(sa.select(ghl_changes))]
    assert {"status": "abandoned"} in kept
    tw.reconfigure(tw.config.model_copy(update={"opportunities": SETTINGS}))  # none mapped
    await tw.ghl_user("PUT", f"/opportunities/{card['id']}/status", {"status": "won"})
    await tw.settle()
    assert tw.outbox() == [] and tw.hook.received == []


async def test_a_won_card_dragged_in_ghl_is_not_reopened_by_the_answer(tw: TwoWay) -> None:
    card, stages = await _card_at(tw, "Estimate Scheduled")
    tw.dripjobs("proposal.accepted", "dj_c_1", deal_id="dj_d_1", deal_stage="Proposal Approved",
                email="ann@x.io", updated_at=1_800_000_030.0)  # fmt: skip
    await tw.settle()
    # A GHL user drags the won card back; GHL leaves it won.
    await tw.ghl_user(
        "PUT", f"/opportunities/{card['id']}", {"pipelineStageId": stages["Estimate booked"]}
    )
    await tw.settle()
    (move,) = tw.hook.applied.values()
    assert move["data"]["stage"] == "Estimate Scheduled"
    writes = tw.ghl_writes()
    tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage="Estimate Scheduled",
                email="ann@x.io", updated_at=1_800_000_040.0)  # fmt: skip
    await tw.settle()
    assert tw.ghl_writes() == writes, "the answer to our move_deal reopened the card"
    location = tw.sandbox.state.location(tw.sandbox.location_id)
    assert location is not None
    assert location.opportunities[card["id"]]["status"] == "won"
    # A later DripJobs move is DripJobs' own: the card it last synced won is reopened.
    tw.dripjobs("deal.stage_changed", "dj_c_1", deal_id="dj_d_1", deal_stage="New lead",
                email="ann@x.io", updated_at=1_800_000_050.0)  # fmt: skip
    await tw.settle()
    assert location.opportunities[card["id"]]["status"] == "open"
    assert len(tw.hook.applied) == 1


def _upserts(tw: TwoWay) -> int:
    return sum(1 for r in tw.sandbox.state.requests if r.get("path") == "/opportunities/upsert")
