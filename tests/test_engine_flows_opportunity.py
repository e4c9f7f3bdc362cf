"""Deals and projects as GHL opportunities, against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine import Worker
from ghlsync.engine.flows.to_ghl._model import FlowContext
from ghlsync.engine.flows.to_ghl._opportunity import moved_deal_stage
from ghlsync.engine.flows.to_ghl._pipelines import (
    REFRESH_AFTER,
    UnknownPipelineError,
    forget_pipelines,
)
from ghlsync.mapping import AppConfig, ConfigError, Mapper, MappingError, load_config
from ghlsync.mapping._opportunity_settings import OpportunitySettings
from ghlsync.store._tables_engine import dead_letters
from tests._engine_flows_kit import CUSTOMER, Flow, make_client
from tests._engine_kit import count, delivery, send, work_row
from tests._openapi import load_spec, request_errors
from tests._sandbox import InProcessSandbox

SETTINGS = OpportunitySettings(
    deal_pipeline="Sales pipeline",
    deal_stages={"Estimate Scheduled": "Estimate booked", "Proposal Approved": "Won"},
    project_pipeline="Production",
    project_stages={"Job Scheduled": "Scheduled", "Complete": "Completed"},
)
MORE_EVENTS = ("proposal.rejected", "project.completed")
DEAL = {"customer_id": "C1", "deal_id": "D1", "customer_name": "Ann Lee", "salesperson": "Jane Roe"}


@pytest.fixture(autouse=True)
def _fresh_pipelines() -> Iterator[None]:
    forget_pipelines()  # lists kept without a store are per process
    yield
    forget_pipelines()


@pytest.fixture
async def card_flow(flows_store: sa.Engine, sandbox_asgi: InProcessSandbox) -> AsyncIterator[Flow]:
    preset = AppConfig.default()
    assert set(MORE_EVENTS) <= set(preset.events)  # the preset routes every card event
    config = preset.model_copy(
        update={"opportunities": SETTINGS, "users": {"Jane Roe": "usr_sandbox"}}
    )
    box = sandbox_asgi
    async with make_client(box.url, box.token, box.location_id, box.transport()) as client:
        ctx = FlowContext(flows_store, client, box.location_id, box.calendar_id, config,
                          FakeClock())  # fmt: skip
        yield Flow(flows_store, box.state, ctx, Mapper(config))


def _cards(flow: Flow) -> list[dict[str, Any]]:
    return flow.records("opportunities")


def _stage(flow: Flow, card: dict[str, Any]) -> str:
    location = flow.state.location(flow.ctx.location_id)
    assert location is not None
    stages = location.pipelines[card["pipelineId"]]["stages"]
    return str(next(s["name"] for s in stages if s["id"] == card["pipelineStageId"]))


async def test_deal_follows_its_stages_to_won_in_one_card(card_flow: Flow) -> None:
    await card_flow.sync("customer.created", **CUSTOMER)
    first = await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    again = await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    won = await card_flow.sync(
        "proposal.accepted", **DEAL, deal_stage="Proposal Approved", proposal_amount="$1,250.50"
    )
    [card] = _cards(card_flow)
    assert (_stage(card_flow, card), card["status"], card["monetaryValue"]) == (
        "Won",
        "won",
        1250.5,
    )
    assert card["assignedTo"] == "usr_sandbox" and card["name"] == "Ann Lee"
    assert (first[-1].entity_type, first[-1].action) == ("opportunity", "created")
    assert (again[-1].action, again[-1].calls) == ("skipped", 0)  # a re-delivery costs nothing
    assert (won[-1].action, won[-1].calls) == ("updated", 1)  # pipelines are cached
    upserts = [r for r in card_flow.requests() if r == ("POST", "/opportunities/upsert")]
    pipelines = [r for r in card_flow.requests() if r[1] == "/opportunities/pipelines"]
    assert (len(upserts), len(pipelines)) == (2, 1)


async def test_rejected_proposal_is_lost_and_projects_get_their_own_card(card_flow: Flow) -> None:
    await card_flow.sync("customer.created", **CUSTOMER)
    await card_flow.sync("proposal.rejected", **DEAL, deal_stage="Estimate Scheduled")
    await card_flow.sync("project.stage_changed", customer_id="C1", project_stage="Job Scheduled")
    await card_flow.sync("project.completed", customer_id="C1", project_stage="Complete")
    by_pipeline = {_pipeline(card_flow, c): c for c in _cards(card_flow)}
    assert by_pipeline["Sales pipeline"]["status"] == "lost"
    project = by_pipeline["Production"]
    assert (_stage(card_flow, project), project["status"]) == ("Completed", "won")
    assert card_flow.row("opportunity", "project:C1") is not None


def _pipeline(flow: Flow, card: dict[str, Any]) -> str:
    location = flow.state.location(flow.ctx.location_id)
    assert location is not None
    return str(location.pipelines[card["pipelineId"]]["name"])


async def test_unknown_stage_is_a_clear_error_listing_the_real_ones(card_flow: Flow) -> None:
    await card_flow.sync("customer.created", **CUSTOMER)
    with pytest.raises(UnknownPipelineError) as caught:
        await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="On Hold")
    message = str(caught.value)
    assert "opportunities.deal_stages" in message and "'On Hold'" in message
    assert "'Estimate booked'" in message and "'Proposal sent'" in message
    assert _cards(card_flow) == []


async def test_the_kept_pipelines_are_read_again_for_an_unknown_stage_once_per_window(
    card_flow: Flow,
) -> None:
    def reads() -> int:
        return sum(1 for r in card_flow.requests() if r[1] == "/opportunities/pipelines")

    await card_flow.sync("customer.created", **CUSTOMER)
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="New lead")
    location = card_flow.state.location(card_flow.ctx.location_id)
    assert location is not None
    [card] = _cards(card_flow)
    location.pipelines[card["pipelineId"]]["stages"].append({"id": "stg_hold", "name": "On Hold"})
    with pytest.raises(UnknownPipelineError):  # added in GHL a moment after the list was read
        await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="On Hold")
    assert reads() == 1
    clock = card_flow.ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(REFRESH_AFTER)
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="On Hold")
    assert reads() == 2 and _cards(card_flow)[0]["pipelineStageId"] == "stg_hold"
    forget_pipelines()  # another process on the same store reads nothing
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="New lead")
    assert reads() == 2


async def test_without_a_pipeline_deals_stay_tags_only(flow: Flow) -> None:
    await flow.sync("customer.created", **CUSTOMER)
    outcomes = await flow.sync("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    assert [o.entity_type for o in outcomes] == ["contact"]
    [contact] = flow.records("contacts")
    assert "deal:estimate scheduled" in contact["tags"]
    assert flow.records("opportunities") == []


async def test_preview_plans_the_upsert_without_sending(
    card_flow: Flow, ghl_spec_dir: Path
) -> None:
    await card_flow.sync("customer.created", **CUSTOMER)
    before = len(card_flow.requests())
    planned = await card_flow.plan("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    upsert = planned[-1]
    assert (upsert.method, upsert.path) == ("POST", "/opportunities/upsert")
    assert len(card_flow.requests()) == before
    # The body the flow builds is one GHL's spec accepts (follower fields included). This
    # event has no amount: the spec types the upsert's `monetaryValue` `object`, a defect
    # (GHL takes a number; docs/sandbox.md).
    request = httpx2.Request(
        "POST",
        "https://services.leadconnectorhq.com/opportunities/upsert",
        json=upsert.body,
        headers={"Version": upsert.version, "Authorization": "Bearer x"},
    )
    assert request_errors(load_spec(ghl_spec_dir, "opportunities"), request) == []


def test_config_file_takes_the_opportunities_section(tmp_path: Path) -> None:
    path = tmp_path / "ghlsync.yaml"
    path.write_text(
        "opportunities:\n"
        "  deal_pipeline: Sales pipeline\n"
        '  deal_stages: {"Estimate Scheduled": "Estimate booked"}\n'
    )
    config = load_config(path, environ={})
    assert config.opportunities.ghl_stage("deal", "estimate scheduled") == "Estimate booked"
    assert config.opportunities.pipeline("project") is None
    path.write_text("opportunities:\n  deal_pipline: Sales pipeline\n")
    with pytest.raises(ConfigError, match="deal_pipline"):
        load_config(path, environ={})


def test_an_amount_that_is_no_number_names_its_field() -> None:
    config = AppConfig.default().model_copy(update={"opportunities": SETTINGS})
    with pytest.raises(MappingError, match="proposal_amount"):
        Mapper(config).map("deal.stage_changed", {**DEAL, "proposal_amount": "a lot"})


async def test_worker_moves_the_card_once_under_duplicate_deliveries(
    engine_store: sa.Engine, engine_clock: FakeClock, sandbox_asgi: InProcessSandbox
) -> None:
    location = sandbox_asgi.location_id
    deal: dict[str, Any] = {"customer_id": "c1", "deal_id": "D1", "proposal_amount": 900}
    sent = send(
        engine_store,
        delivery("c1", "customer.created", location=location, delivery_id="1",
                 first_name="Ann", email="ann@example.com"),
        delivery("c1", "deal.stage_changed", location=location, delivery_id="2",
                 updated_at=1_700_000_100.0, deal_stage="Estimate Scheduled", **deal),
        delivery("c1", "deal.stage_changed", location=location, delivery_id="2",
                 updated_at=1_700_000_100.0, deal_stage="Estimate Scheduled", **deal),
    )  # fmt: skip
    assert sent == [True, True, False]  # the duplicate delivery is refused at the door
    config = AppConfig.default().model_copy(update={"opportunities": SETTINGS})
    client = make_client(sandbox_asgi.url, sandbox_asgi.token, location, sandbox_asgi.transport())
    worker = Worker(engine_store, client, Mapper(config, clock=engine_clock), config,
                    clock=engine_clock)  # fmt: skip
    await worker.run_once()
    send(
        engine_store,
        delivery("c1", "proposal.accepted", location=location, delivery_id="3",
                 updated_at=1_700_000_200.0, deal_stage="Proposal Approved", **deal),
    )  # fmt: skip
    await worker.run_once()
    assert await worker.run_once() == 0
    await client.aclose()
    stored = sandbox_asgi.state.location(location)
    assert stored is not None
    [card] = stored.opportunities.values()
    stages = {s["id"]: s["name"] for s in stored.pipelines[card["pipelineId"]]["stages"]}
    assert (stages[card["pipelineStageId"]], card["status"], card["monetaryValue"]) == (
        "Won",
        "won",
        900,
    )
    assert work_row(engine_store, "c1", location)["status"] == "done"
    assert count(engine_store, dead_letters) == 0


async def test_a_card_moved_in_ghl_maps_back_to_the_dripjobs_stage(card_flow: Flow) -> None:
    events: list[dict[str, Any]] = []
    card_flow.state.event_hook = events.append
    await card_flow.sync("customer.created", **CUSTOMER)
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="New lead")
    [card] = _cards(card_flow)
    location = card_flow.state.location(card_flow.ctx.location_id)
    assert location is not None
    booked = next(s for s in location.pipelines[card["pipelineId"]]["stages"]
                  if s["name"] == "Estimate booked")  # fmt: skip
    loc = card_flow.ctx.location_id
    assert card_flow.ctx.client is not None
    await card_flow.ctx.client.request(  # a person drags the card in GHL
        "PUT", f"/opportunities/{card['id']}", key=loc, version="2021-07-28",
        json={"pipelineStageId": booked["id"]},
    )  # fmt: skip
    [moved] = [e for e in events if e["type"] == "OpportunityStageUpdate"]
    with card_flow.engine.connect() as conn:  # the list the upsert read is kept in the store
        assert moved_deal_stage(SETTINGS, loc, moved, conn) == ("deal", "Estimate Scheduled")
        other = {**moved, "pipelineId": "elsewhere"}
        assert moved_deal_stage(SETTINGS, loc, other, conn) is None
    assert moved_deal_stage(SETTINGS, loc, moved) is None  # nothing kept in this process


def test_preview_counts_the_card_fields_as_mapped() -> None:
    payload = {**DEAL, "deal_stage": "New lead", "proposal_amount": 5, "colour": "red"}
    plain = Mapper(AppConfig.default()).unmapped("deal.stage_changed", payload)
    config = AppConfig.default().model_copy(update={"opportunities": SETTINGS})
    with_cards = Mapper(config).unmapped("deal.stage_changed", payload)
    assert {"salesperson", "proposal_amount", "deal_id"} <= set(plain)
    assert with_cards == ["colour"]


# -- status `open` (a won/lost card moved back) and `deal_statuses` --------------------------

WITH_STATUSES = SETTINGS.model_copy(
    update={
        "deal_stages": {**SETTINGS.deal_stages, "Proposal Rejected": "Lost"},
        "deal_statuses": {"won": "Proposal Approved", "lost": "Proposal Rejected"},
    }
)


def _statuses(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["status"]) for e in events if e["type"] == "OpportunityStatusUpdate"]


def _upserts(flow: Flow) -> int:
    return sum(1 for r in flow.requests() if r == ("POST", "/opportunities/upsert"))


async def test_a_won_card_moved_to_an_ordinary_stage_is_reopened_once(card_flow: Flow) -> None:
    events: list[dict[str, Any]] = []
    card_flow.state.event_hook = events.append
    await card_flow.sync("customer.created", **CUSTOMER)
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="New lead")
    await card_flow.sync("proposal.accepted", **DEAL, deal_stage="Proposal Approved")
    # DripJobs' own stage event for the won deal: the same stage, so no reopen.
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Proposal Approved")
    assert _cards(card_flow)[0]["status"] == "won"
    upserts = _upserts(card_flow)
    planned = await card_flow.plan("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    assert planned[-1].body is not None and planned[-1].body["status"] == "open"
    moved = await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    [card] = _cards(card_flow)
    assert (_stage(card_flow, card), card["status"]) == ("Estimate booked", "open")
    assert (moved[-1].action, moved[-1].calls, _upserts(card_flow)) == ("updated", 1, upserts + 1)
    again = await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    assert (again[-1].action, again[-1].calls) == ("skipped", 0)  # re-delivery: nothing
    # The card is open now: a further stage change sends no status (only then).
    planned = await card_flow.plan("deal.stage_changed", **DEAL, deal_stage="New lead")
    assert planned[-1].body is not None and "status" not in planned[-1].body
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="New lead")
    assert _statuses(events) == ["won", "open"]


async def test_a_lost_deal_and_a_completed_project_reopen_on_a_later_stage(
    card_flow: Flow,
) -> None:
    await card_flow.sync("customer.created", **CUSTOMER)
    await card_flow.sync("proposal.rejected", **DEAL, deal_stage="Proposal Sent")
    await card_flow.sync("project.completed", customer_id="C1", project_stage="Complete")
    # A stage event without a stage (blank) moves nothing and reopens nothing.
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="")
    assert {c["status"] for c in _cards(card_flow)} == {"lost", "won"}
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    await card_flow.sync("project.stage_changed", customer_id="C1", project_stage="Job Scheduled")
    by_pipeline = {_pipeline(card_flow, c): c for c in _cards(card_flow)}
    assert by_pipeline["Sales pipeline"]["status"] == "open"
    project = by_pipeline["Production"]
    assert (_stage(card_flow, project), project["status"]) == ("Scheduled", "open")


def _use(flow: Flow, settings: OpportunitySettings) -> None:
    config = flow.ctx.config.model_copy(update={"opportunities": settings})
    flow.ctx.config, flow.mapper = config, Mapper(config)


async def test_a_deal_moved_to_a_status_stage_gets_that_status(card_flow: Flow) -> None:
    _use(card_flow, WITH_STATUSES)
    events: list[dict[str, Any]] = []
    card_flow.state.event_hook = events.append
    await card_flow.sync("customer.created", **CUSTOMER)
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Proposal Sent")
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="proposal rejected")
    [card] = _cards(card_flow)
    assert (_stage(card_flow, card), card["status"]) == ("Lost", "lost")
    await card_flow.sync("deal.stage_changed", **DEAL, deal_stage="Estimate Scheduled")
    assert _cards(card_flow)[0]["status"] == "open"
    assert _statuses(events) == ["lost", "open"]


def test_deal_statuses_are_validated_with_the_setting_and_the_valid_names(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ghlsync.yaml"
    path.write_text(
        "opportunities:\n"
        "  deal_pipeline: Sales pipeline\n"
        '  deal_statuses: {Won: "Proposal Approved", lost: "Proposal Rejected"}\n'
    )
    settings = load_config(path, environ={}).opportunities
    assert settings.status_stage("deal", "won") == "Proposal Approved"  # `Won` is `won`
    assert settings.stage_status("deal", "proposal rejected") == "lost"
    assert settings.status_stage("project", "won") is None  # no project write-back
    path.write_text("opportunities:\n  deal_statuses: {closed: Lost}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "opportunities.deal_statuses.closed" in message
    assert "'closed' is not one of won, lost, abandoned" in message
    path.write_text("opportunities:\n  deal_statuses: {won: Done, lost: done}\n")
    with pytest.raises(ConfigError, match=r"opportunities\.deal_statuses: won and lost both"):
        load_config(path, environ={})
