"""Recipe write-back steps send the write-back contract's fields (docs/two-way.md), the ones the
two-way sync sends to the same Zap: the inputs' names are the contract's (older names read as
them, fields the contract has none for accepted and left out), plus `ghl_contact_id` of the
run's contact and the customer's email, phone and names from the event, else as ghlsync knows
the contact. A recipe's appointment request is not taken for a GHL appointment's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ghlsync._clock import FakeClock
from ghlsync.engine.flows.recipes import ACTIONS, recipe_book
from ghlsync.engine.flows.recipes._actions_dripjobs import writeback_data
from ghlsync.engine.flows.recipes._book import step_inputs
from ghlsync.engine.flows.recipes._context import StepContext
from ghlsync.engine.flows.to_dripjobs._link import _requested_appointment
from ghlsync.engine.flows.to_ghl._plan import DrySender
from ghlsync.engine.outbox._store import enqueue
from ghlsync.engine.state import _ghlrecords
from ghlsync.engine.state._ghlrecords import GHLRecord
from ghlsync.mapping import AppConfig, ConfigError
from ghlsync.mapping._writeback import ACTION_FIELDS
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_twoway import writeback_outbox
from tests._recipes_kit import START, with_recipes

LOCATION = "loc-1"
WRITE_BACKS = sorted(a for a in ACTIONS if a.startswith("dripjobs."))


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    found = create_engine(f"sqlite:///{tmp_path / 'ghlsync.db'}")
    migrate(found)
    return found


def _ctx(engine: sa.Engine, fields: dict[str, Any], contact: str | None = "ghl-c1") -> StepContext:
    return StepContext(
        engine=engine,
        sender=DrySender(),
        config=AppConfig.default(),
        clock=FakeClock(START),
        location_id=LOCATION,
        contact_id=contact,
        calendar_id=None,
        key="recipe|0|instance",
        fields=fields,
    )


def _step(action: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"name": "r", "when": {"trigger": "ghl.ContactTagUpdate"}, "do": [{action: inputs}]}


@pytest.mark.parametrize("action", WRITE_BACKS)
def test_a_write_back_step_takes_the_contract_fields_as_inputs(action: str) -> None:
    names = {i.name for i in ACTIONS[action].inputs}
    contract = ACTION_FIELDS[action.removeprefix("dripjobs.")]
    assert names == contract - {"ghl_contact_id", "ghl_appointment_id", "ghl_opportunity_id"}


def test_the_older_appointment_input_names_still_load_and_are_read_as_the_contract_names() -> None:
    old = {
        "appointment_start": "+1d 09:00",
        "appointment_end": "+1d 10:00",
        "appointment_title": "Estimate",
        "customer_id": "{customer_id}",
    }
    config = with_recipes(_step("dripjobs.create_appointment_request", old))
    [recipe] = recipe_book(config).recipes
    spec = ACTIONS["dripjobs.create_appointment_request"]
    assert step_inputs(spec, recipe.do[0].inputs) == {
        "start": "+1d 09:00",
        "end": "+1d 10:00",
        "title": "Estimate",
        "customer_id": "{customer_id}",
    }
    updated = {"appointment_id": "{appointment_id}", "appointment_status": "confirmed"}
    recipe_book(with_recipes(_step("dripjobs.update_appointment", updated)))
    recipe_book(with_recipes(_step("dripjobs.move_deal", {"deal_id": "{deal_id}", "stage": "Won"})))


def test_an_input_given_by_both_names_or_an_unknown_one_is_a_config_error() -> None:
    both = {"start": "+1d 09:00", "appointment_start": "+2d 09:00"}
    with pytest.raises(ConfigError) as caught:
        recipe_book(with_recipes(_step("dripjobs.create_appointment_request", both)))
    assert caught.value.problems == [
        "ghlsync.yaml: recipes[0].do[0].dripjobs.create_appointment_request: appointment_start "
        "is the older name of start, which is given too; give one"
    ]
    with pytest.raises(ConfigError) as caught:
        recipe_book(with_recipes(_step("dripjobs.update_appointment", {"strat": "+1d"})))
    [problem] = caught.value.problems
    assert "strat: unknown input; did you mean 'start'" in problem
    bad_date = {"appointment_start": "+1x"}  # an older name's date is checked as the input's
    with pytest.raises(ConfigError) as caught:
        recipe_book(with_recipes(_step("dripjobs.create_appointment_request", bad_date)))
    [problem] = caught.value.problems
    assert "dripjobs.create_appointment_request.start" in problem


async def test_a_step_sends_the_contract_fields_its_contact_and_the_event_person(
    engine: sa.Engine,
) -> None:
    event = {"email": "ann@example.com", "phone": "+14155550123", "first_name": "Ann"}
    event |= {"customer_id": "C1", "deal_id": "D1", "appointment_start": "2031-01-01T09:00:00Z"}
    inputs = {"start": "2031-05-01T15:00:00+00:00", "appointment_id": "A1", "title": ""}
    data, left_out = await writeback_data(_ctx(engine, event), "update_appointment", inputs)
    assert data == {
        "start": "2031-05-01T15:00:00+00:00",
        "ghl_contact_id": "ghl-c1",
        "email": "ann@example.com",
        "phone": "+14155550123",
        "first_name": "Ann",
    }
    assert left_out == ["appointment_id"]
    # The step's own values win over the event's; move_deal takes no names.
    inputs = {"stage": "Won", "email": "bo@example.com", "deal_id": "D9"}
    data, left_out = await writeback_data(_ctx(engine, event), "move_deal", inputs)
    assert data == {
        "stage": "Won",
        "email": "bo@example.com",
        "phone": "+14155550123",
        "ghl_contact_id": "ghl-c1",
    }
    assert left_out == ["deal_id"]


async def test_a_step_names_the_customer_as_ghlsync_knows_the_contact(engine: sa.Engine) -> None:
    with engine.begin() as conn:  # GHL told us of the contact (its ContactCreate)
        record = GHLRecord({"email": "cy@example.com", "firstName": "Cy", "lastName": "Ho"})
        _ghlrecords.put(conn, LOCATION, "contact", "ghl-c1", record, now=START)
    inputs = {"start": "2031-05-01T15:00:00+00:00"}
    ctx = _ctx(engine, {"last_name": "Hoang"})  # an event about the appointment, say
    data, _ = await writeback_data(ctx, "create_appointment_request", inputs)
    assert data == {
        "start": "2031-05-01T15:00:00+00:00",
        "ghl_contact_id": "ghl-c1",
        "email": "cy@example.com",
        "first_name": "Cy",
        "last_name": "Hoang",
    }
    data, _ = await writeback_data(_ctx(engine, {}, contact=None), "move_deal", {"stage": "Won"})
    assert data == {"stage": "Won"}  # no contact: nothing to add


async def test_a_dry_run_shows_the_body_and_what_it_leaves_out(engine: sa.Engine) -> None:
    spec = ACTIONS["dripjobs.update_appointment"]
    inputs = {"start": "2031-05-01T15:00:00+00:00", "appointment_status": "confirmed"}
    result = await spec.run(_ctx(engine, {"email": "ann@example.com"}), inputs)
    assert result.detail == (
        "write-back update_appointment {'start': '2031-05-01T15:00:00+00:00', "
        "'ghl_contact_id': 'ghl-c1', 'email': 'ann@example.com'} "
        "(appointment_status left out: not write-back fields)"
    )


def test_a_recipe_appointment_request_is_not_taken_for_a_ghl_appointments(
    engine: sa.Engine,
) -> None:
    """DripJobs' appointment.scheduled links to the GHL appointment whose request it answers;
    a recipe step's request (keyed by its contact, with the same ghl_contact_id) has none."""
    start = "2031-05-01T15:00:00+00:00"
    data = {"ghl_contact_id": "ghl-c1", "email": "ann@example.com", "start": start}
    with engine.begin() as conn:
        enqueue(
            conn, location_id=LOCATION, action="create_appointment_request",
            dedupe_key="recipe:r|0|i", ghl_entity="contact", ghl_id="ghl-c1",
            data=data, url=None, now=START,
        )  # fmt: skip
        assert _requested_appointment(conn, LOCATION, "ghl-c1", start, START - 60) is None
        enqueue(
            conn, location_id=LOCATION, action="create_appointment_request",
            dedupe_key="create_appointment_request:ghl-a1", ghl_entity="appointment",
            ghl_id="ghl-a1", data={**data, "ghl_appointment_id": "ghl-a1"}, url=None,
            now=START + 1,
        )  # fmt: skip
        assert _requested_appointment(conn, LOCATION, "ghl-c1", start, START - 60) == "ghl-a1"
        bodies = conn.execute(sa.select(writeback_outbox.c.body)).scalars().all()
    assert all(
        set(json.loads(b)["data"]) <= ACTION_FIELDS["create_appointment_request"] for b in bodies
    )
