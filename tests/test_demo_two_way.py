"""`ghlsync demo --two-way`: the agreement check, and the demo as users run it."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from ghlsync.cli import app
from ghlsync.demo._twoway_agree import agreement_problems, duplicate_count

GHL: dict[str, Any] = {
    "contacts": [
        {
            "id": "g1",
            "email": "Ada@Example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "phone": "+15125550101",
            "tags": ["lead", "deal:proposal sent"],
        },
        {"id": "g2", "email": "lin@example.com", "firstName": "Lin", "tags": []},
    ],
    "appointments": [
        {"contactId": "g1", "startTime": "2031-04-07T15:00:00Z", "appointmentStatus": "new"},
        {"contactId": "g2", "startTime": "2031-04-09T15:00:00Z", "appointmentStatus": "cancelled"},
    ],
}
DRIPJOBS: dict[str, Any] = {
    "customers": [
        {
            "id": "dj_c_1",
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone": "(512) 555-0101",
        },
        {"id": "dj_c_2", "email": "lin@example.com", "first_name": "Lin"},
    ],
    "appointments": [
        {"customer_id": "dj_c_1", "start": "2031-04-07T10:00:00-05:00", "status": "scheduled"},
        {"customer_id": "dj_c_2", "start": "2031-04-09T10:00:00-05:00", "status": "canceled"},
    ],
    "deals": [
        {"id": "dj_d_1", "customer_id": "dj_c_1", "stage": "Estimate Scheduled"},
        {"id": "dj_d_2", "customer_id": "dj_c_1", "stage": "Proposal Sent"},
        {"id": "dj_d_3", "customer_id": "dj_c_2", "stage": "Appointment Requested"},
    ],
}


def _changed(side: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(side)
    target = copied
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copied


_DROP = object()


def test_the_same_people_times_and_stages_agree() -> None:
    assert agreement_problems(GHL, DRIPJOBS) == []
    assert duplicate_count(GHL) == 0


@pytest.mark.parametrize(
    ("ghl", "dripjobs", "expected"),
    [
        (GHL, _changed(DRIPJOBS, ("customers", 1), _DROP), "lin@example.com: missing in DripJobs"),
        (
            _changed(GHL, ("contacts", 0, "phone"), "+15125550199"),
            DRIPJOBS,
            "ada@example.com: phone '5125550199' in GHL, phone '5125550101' in DripJobs",
        ),
        (
            _changed(GHL, ("appointments", 1, "appointmentStatus"), "confirmed"),
            DRIPJOBS,
            "lin@example.com: appointments at [2031-04-09 15:00] in GHL, [] in DripJobs",
        ),
        (
            _changed(GHL, ("contacts", 0, "tags"), ["deal:estimate scheduled"]),
            DRIPJOBS,
            "ada@example.com: deal tags ['estimate scheduled'] in GHL, stage 'proposal sent'",
        ),
        (
            GHL,
            _changed(DRIPJOBS, ("customers", 1, "first_name"), "Linda"),
            "lin@example.com: firstName 'Lin' in GHL, first_name 'Linda' in DripJobs",
        ),
    ],
)
def test_each_disagreement_is_named(
    ghl: dict[str, Any], dripjobs: dict[str, Any], expected: str
) -> None:
    problems = agreement_problems(ghl, dripjobs)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_twice_the_same_person_or_appointment_is_a_duplicate() -> None:
    ghl = copy.deepcopy(GHL)
    ghl["contacts"].append({**ghl["contacts"][1], "id": "g3"})
    ghl["appointments"].append(dict(ghl["appointments"][0]))
    assert duplicate_count(ghl) == 2
    assert "lin@example.com: 2 x GHL contact" in agreement_problems(ghl, DRIPJOBS)


@pytest.fixture(scope="module")
def two_way_run() -> Iterator[tuple[int, dict[str, Any]]]:
    """One `ghlsync demo --two-way --json` run, shared by the tests below."""
    logger = logging.getLogger("ghlsync")
    level = logger.level
    result = CliRunner().invoke(app, ["demo", "--two-way", "--people", "2", "--json"])
    logger.setLevel(level)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    yield result.exit_code, json.loads(result.stdout[result.stdout.index("{") :])


def test_demo_two_way_writes_back_every_ghl_change_and_nothing_from_dripjobs(
    two_way_run: tuple[int, dict[str, Any]],
) -> None:
    _, summary = two_way_run
    ghl_side, dripjobs_side, both = summary["phases"]
    assert ghl_side["writebacks"] == ghl_side["expected_writebacks"] == 2 + 1 + 1 + 2
    assert dripjobs_side["writebacks"] == 0 and dripjobs_side["ghl_writes"] > 0
    assert both["writebacks"] == both["expected_writebacks"] == 1
    assert dripjobs_side["echo_writes"] == both["echo_writes"] == 0
    assert summary["writebacks"] == {
        "create_lead": 3,
        "create_appointment_request": 1,
        "update_appointment": 1,
        "move_deal": 2,
    }
    assert summary["fired"]["lead.created"] == 3 + 2 + 1


def test_demo_two_way_ends_with_both_sides_agreeing(
    two_way_run: tuple[int, dict[str, Any]],
) -> None:
    exit_code, summary = two_way_run
    assert summary["problems"] == []
    assert summary["echo_writes"] == 0 and summary["duplicates"] == 0
    assert summary["ok"] is True and exit_code == 0


def test_demo_two_way_refuses_faults() -> None:
    result = CliRunner().invoke(app, ["demo", "--two-way", "--faults", '{"500": 0.1}'])
    assert result.exit_code == 2 and "--two-way" in result.output
