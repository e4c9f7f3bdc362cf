"""`ghlsync catalog`: every trigger and action ghlsync supports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ghlsync.cli import app
from ghlsync.ghl import OPERATIONS
from ghlsync.mapping import AppConfig

PRESET_EVENTS = {
    "customer.created", "customer.updated", "lead.created", "deal.stage_changed",
    "project.stage_changed", "proposal.accepted", "task.created", "task.updated",
    "task.completed", "task.deleted", "note.created", "note.updated",
    "appointment.scheduled", "appointment.updated", "appointment.canceled",
    "proposal.rejected", "proposal.viewed", "project.completed", "booking_form.submitted",
    "job_costing.completed", "invoice.created", "payment.received", "card_label.changed",
    "text_message.received", "estimate.scheduled", "custom_event.scheduled",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _preset_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GHLSYNC_CONFIG", raising=False)


def test_json_lists_every_preset_event_and_every_operation() -> None:
    result = CliRunner().invoke(app, ["catalog", "--json"])

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (
        {t["event"] for t in found["triggers"]} == PRESET_EVENTS == set(AppConfig.default().events)
    )
    assert {a["operation"] for a in found["actions"]} == set(OPERATIONS)
    task = next(t for t in found["triggers"] if t["event"] == "task.completed")
    assert task == {
        "event": "task.completed",
        "path": "/hooks/dripjobs/task.completed",
        "entity": "task",
        "action": "complete",
        "id_field": "task_id",
        "contact_field": "customer_id",
        "tags": [],
    }
    upsert = next(a for a in found["actions"] if a["operation"] == "upsert-contact")
    assert (upsert["method"], upsert["path"], upsert["body"]) == ("POST", "/contacts/upsert", True)


def test_a_configured_event_appears_as_a_trigger(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("events:\n  job.won: {entity: contact, id: job_customer}\n")
    result = CliRunner().invoke(app, ["catalog", "--json", "--config", str(config)])

    assert result.exit_code == 0, result.output
    events = {t["event"]: t for t in json.loads(result.stdout)["triggers"]}
    assert events["job.won"]["id_field"] == "job_customer"


def test_tables_name_the_counts() -> None:
    result = CliRunner().invoke(app, ["catalog"])

    assert result.exit_code == 0, result.output
    assert f"{len(PRESET_EVENTS)} DripJobs events" in result.output
    assert f"{len(OPERATIONS)} GHL API v2 operations" in result.output
    assert "appointment.scheduled" in result.output


def test_a_broken_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("ghl: {tokn: x}\n")
    result = CliRunner().invoke(app, ["catalog", "--config", str(config)])

    assert result.exit_code == 2
    assert "tokn" in result.output
