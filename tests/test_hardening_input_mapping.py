"""Mapping errors all at once, fields no rule reads, out-of-range dates (issue 8, items 4, 14):
the mapper, `ghlsync preview`, and the worker's dead letters end to end."""

from __future__ import annotations

import json
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ghlsync._json import UnsafeJSON, load_json
from ghlsync.cli import app
from ghlsync.mapping import AppConfig, Mapper, MappingError
from tests._robust_kit import Rig

BAD_EMAIL_AND_PHONE = {
    "customer_id": "C-1",
    "email": "not-an-email",
    "phone": "12",
    "tags": "vip",
    "task_assignee": "Sam",
}


@pytest.fixture
def mapper() -> Mapper:
    return Mapper(AppConfig.default())


# ------------------------------------------------------------------------------ the mapper


def test_every_bad_field_is_reported_at_once(mapper: Mapper) -> None:
    with pytest.raises(MappingError) as caught:
        mapper.map("customer.created", BAD_EMAIL_AND_PHONE)

    assert [p.field for p in caught.value.problems] == ["email", "phone"]
    assert "email: 'not-an-email' is not an email address" in str(caught.value)
    assert "phone: '12' is not a valid phone number" in str(caught.value)
    # Workers hand errors between processes: the whole list survives pickling.
    again = pickle.loads(pickle.dumps(caught.value))
    assert (str(again), len(again.problems)) == (str(caught.value), 2)


def test_a_single_problem_stays_a_plain_mapping_error(mapper: Mapper) -> None:
    with pytest.raises(MappingError) as caught:
        mapper.map("customer.created", {"customer_id": "C-1", "email": "nope"})
    assert type(caught.value) is MappingError
    assert caught.value.problems == [caught.value]


def test_a_bad_timestamp_a_bad_date_and_a_missing_body_come_together(mapper: Mapper) -> None:
    body = {"customer_id": "C-1", "note_id": "N-1", "updated_at": "soon", "email": "x@"}
    with pytest.raises(MappingError) as caught:
        mapper.map("note.created", body)
    assert [p.field for p in caught.value.problems] == ["updated_at", "email", "note_body"]


def test_unmapped_names_the_fields_no_rule_reads(mapper: Mapper) -> None:
    body = {**BAD_EMAIL_AND_PHONE, "Delivery ID": "d-1", "updated_at": "2026-12-01"}
    assert mapper.unmapped("customer.created", body) == ["tags", "task_assignee"]


def test_a_child_reads_its_customers_fields_but_a_delete_reads_only_its_ids(
    mapper: Mapper,
) -> None:
    task = {"customer_id": "C-1", "task_id": "T-1", "email": "a@b.co", "task_title": "Call"}
    assert mapper.unmapped("task.created", {**task, "roof": "tile"}) == ["roof"]
    assert mapper.unmapped("task.deleted", task) == ["email", "task_title"]


OUT_OF_RANGE = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:30:00Z"]


@pytest.mark.parametrize("when", OUT_OF_RANGE)
@pytest.mark.parametrize(
    ("event", "field"),
    [("task.created", "task_due"), ("appointment.scheduled", "appointment_start")],
)
def test_dates_at_the_ends_of_the_calendar_are_mapping_errors(
    mapper: Mapper, event: str, field: str, when: str
) -> None:
    body = {"customer_id": "C-1", "task_id": "T-1", "appointment_id": "A-1", field: when}
    if when.endswith("Z") and event == "task.created":
        mapper.map(event, body)  # a task due then exists; only an hour-long appointment cannot
        return
    with pytest.raises(MappingError) as caught:
        mapper.map(event, body)
    assert caught.value.field == field


def test_json_nesting_is_checked_without_recursion() -> None:
    assert load_json(b"[" * 32 + b"]" * 32) is not None
    with pytest.raises(UnsafeJSON, match="nested more than 32"):
        load_json(b"[" * 33 + b"]" * 33)
    with pytest.raises(UnsafeJSON, match="nested more than 32"):
        load_json(b"[" * 100_000 + b"]" * 100_000)


# ----------------------------------------------------------------------------------- preview


@pytest.fixture
def event_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("CONFIG", "DATABASE_URL", "GHL_LOCATION_ID", "GHL_CALENDAR_ID", "GHL_TOKEN"):
        monkeypatch.delenv(f"GHLSYNC_{name}", raising=False)
    return tmp_path / "event.json"


def test_preview_reports_every_bad_field_and_what_it_ignores(event_file: Path) -> None:
    event_file.write_text(json.dumps({"event": "customer.created", **BAD_EMAIL_AND_PHONE}))

    result = CliRunner().invoke(app, ["preview", str(event_file)])

    assert result.exit_code == 1
    assert "customer.created: 2 fields cannot be mapped:" in result.output
    assert "  - email: 'not-an-email' is not an email address" in result.output
    assert "  - phone: '12' is not a valid phone number" in result.output
    assert "not mapped: tags, task_assignee" in result.output


def test_preview_lists_ignored_fields_after_the_calls(event_file: Path) -> None:
    good = {**BAD_EMAIL_AND_PHONE, "email": "ava@example.com", "phone": "512 555 0188"}
    event_file.write_text(json.dumps({"event": "customer.created", **good}))

    text = CliRunner().invoke(app, ["preview", str(event_file)])
    as_json = CliRunner().invoke(app, ["preview", str(event_file), "--json"])

    assert text.exit_code == 0, text.output
    assert text.output.rstrip().endswith("not mapped: tags, task_assignee")
    assert json.loads(as_json.stdout)["not_mapped"] == ["tags", "task_assignee"]


def test_preview_refuses_a_file_the_receiver_would_refuse(event_file: Path) -> None:
    deep = "[" * 5_000 + "]" * 5_000
    event_file.write_text('{"event": "customer.created", "customer_id": "C-1", "x": ' + deep + "}")

    result = CliRunner().invoke(app, ["preview", str(event_file)])

    assert result.exit_code == 2
    assert "nested more than 32 levels" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ------------------------------------------------------------------ dead letters, end to end


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    """Sandbox, store, receiver and a running worker with 3 attempts per item."""
    async with Rig(database_url) as started:
        started.start_worker()
        yield started


CHILD_DATES: dict[str, tuple[str, dict[str, Any]]] = {
    "task due after 9999": (
        "task.created",
        {"task_id": "T-1", "task_title": "Call", "task_due": "9999-12-31T23:59:59-12:00"},
    ),
    "appointment before year 1": (
        "appointment.scheduled",
        {"appointment_id": "A-1", "appointment_start": "0001-01-01T00:00:00+14:00"},
    ),
}


@pytest.mark.parametrize("case", list(CHILD_DATES), ids=list(CHILD_DATES))
async def test_an_out_of_range_child_date_is_dead_lettered_on_the_first_attempt(
    rig: Rig, case: str
) -> None:
    event, child = CHILD_DATES[case]
    body = {"customer_id": "C-1", "email": "ava@example.com", **child}
    assert (await rig.post(event, body)).status_code == 202
    await rig.drain()

    (letter,) = rig.dead_letters()
    assert letter.attempts == 1, letter.reason  # not retried: the same input fails the same way
    assert letter.error_class == "MappingError"
    field = "task_due" if event == "task.created" else "appointment_start"
    assert f"{field}: " in letter.reason and "outside the calendar" in letter.reason


async def test_a_dead_letter_names_every_bad_field(rig: Rig) -> None:
    assert (await rig.post("customer.created", BAD_EMAIL_AND_PHONE)).status_code == 202
    await rig.drain()

    (letter,) = rig.dead_letters()
    assert "email: 'not-an-email'" in letter.reason
    assert "phone: '12'" in letter.reason
    assert letter.attempts == 1
