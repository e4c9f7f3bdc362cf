"""`ghlsync preview EVENT.json`: the GHL calls an event would cause, sending nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ghlsync.cli import app

GOLDEN = Path(__file__).parent / "golden" / "events"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ./ghlsync.yaml and no GHLSYNC_* variables: the embedded preset."""
    monkeypatch.chdir(tmp_path)
    for name in ("CONFIG", "DATABASE_URL", "GHL_LOCATION_ID", "GHL_CALENDAR_ID", "GHL_TOKEN"):
        monkeypatch.delenv(f"GHLSYNC_{name}", raising=False)


def write(tmp_path: Path, body: Any, name: str = "event.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def preview_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["preview", *args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_a_task_with_its_customer_plans_the_contact_then_the_task() -> None:
    out = preview_json(str(GOLDEN / "task_created_with_customer.json"))

    assert out["event"] == "task.created"
    assert [(c["method"], c["path"]) for c in out["calls"]] == [
        ("POST", "/contacts/upsert"),
        ("POST", "/contacts/<new contact C-1001>/tasks"),
    ]
    assert out["calls"][0]["body"]["email"] == "ann.lee@example.com"
    assert out["calls"][1]["body"]["title"] == "Call back about estimate"
    assert [e["type"] for e in out["mapped"]["entities"]] == ["contact", "task"]


def test_a_flat_body_with_the_event_named_on_the_command_line(tmp_path: Path) -> None:
    body = {
        "Customer ID": "C-9",
        "First Name": "Bo",
        "Email": "bo@example.com",
        "Phone": "512 555 0188",
    }
    out = preview_json(str(write(tmp_path, body)), "--event", "lead.created")

    (upsert, tags) = out["calls"]
    assert upsert["body"]["phone"] == "+15125550188"
    assert (tags["method"], tags["body"]) == ("POST", {"tags": ["lead"]})


def test_the_human_output_lists_numbered_calls_and_bodies(tmp_path: Path) -> None:
    note = {"event": "note.created", "customer_id": "C-2", "email": "di@example.com"}
    path = write(tmp_path, {**note, "note_id": "N-1", "note_body": "Wants a fence"})
    result = CliRunner().invoke(app, ["preview", str(path)])

    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output
    assert "1. POST /contacts/upsert" in result.output
    assert "2. POST /contacts/<new contact C-2>/notes  (create)" in result.output
    assert '"body": "Wants a fence"' in result.output


def test_the_configured_store_makes_an_unchanged_event_cost_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --store the plan reads what was synced: an event equal to it plans zero calls."""
    import asyncio

    from ghlsync.demo import DemoEvent, Pipeline, PipelineOptions

    body = {"customer_id": "C-5", "first_name": "Cy", "email": "cy@example.com"}
    url = f"sqlite:///{tmp_path / 'store.db'}"

    async def sync_once() -> str:
        async with Pipeline(PipelineOptions(database_url=url)) as pipe:
            await pipe.send([DemoEvent("customer.created", body)])
            await pipe.wait_drained()
            return pipe.location_id

    monkeypatch.setenv("GHLSYNC_DATABASE_URL", url)
    monkeypatch.setenv("GHLSYNC_GHL_LOCATION_ID", asyncio.run(sync_once()))
    event = str(write(tmp_path, {"event": "customer.created", **body}))

    assert preview_json(event, "--store")["calls"] == []
    assert len(preview_json(event)["calls"]) == 1  # an empty store: the contact is new


@pytest.mark.parametrize(
    ("body", "args", "code", "words"),
    [
        ({"customer_id": "C-1"}, [], 2, 'no "event" key'),
        ({"event": "invoice.paid", "customer_id": "C-1"}, [], 1, "invoice.paid"),
        ({"event": "task.created", "customer_id": "C-1"}, [], 1, "task_id"),
        ([1, 2], [], 2, "JSON object"),
        (
            {"event": "note.created", "customer_id": "C-1", "note_id": "N-1", "note_body": "Hi"},
            [],
            1,
            "not in GHL",
        ),
    ],
)
def test_bad_events_are_refused_with_the_reason(
    tmp_path: Path, body: Any, args: list[str], code: int, words: str
) -> None:
    result = CliRunner().invoke(app, ["preview", str(write(tmp_path, body)), *args])

    assert result.exit_code == code, result.output
    assert words in result.output


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    event = write(tmp_path, {"event": "customer.created", "customer_id": "C-1", "email": "a@b.co"})
    result = CliRunner().invoke(
        app,
        ["preview", str(event), "--store"],
        env={"GHLSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'nope.db'}"},
    )

    assert result.exit_code == 1
    assert "no store at" in result.output
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize(
    ("event", "pipeline", "stage", "status"),
    [
        ("proposal.rejected", "Sales pipeline", "Lost", "lost"),
        ("project.completed", "Production", "Completed", "won"),
    ],
)
def test_a_deal_or_project_event_previews_its_opportunity_upsert(
    tmp_path: Path, event: str, pipeline: str, stage: str, status: str
) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text(
        "opportunities:\n  deal_pipeline: Sales pipeline\n  project_pipeline: Production\n"
        "  project_stages: {Project Complete: Completed}\n"
    )
    body = {"customer_id": "C-7", "email": "cy@example.com", "proposal_amount": "$2,400",
            "deal_stage": "Lost", "project_stage": "Project Complete"}  # fmt: skip
    out = preview_json(str(write(tmp_path, body)), "--event", event, "--config", str(config))

    card = out["calls"][-1]
    assert (card["method"], card["path"]) == ("POST", "/opportunities/upsert")
    assert card["body"]["pipelineId"] == f"<pipeline {pipeline}>"
    assert card["body"]["pipelineStageId"] == f"<stage {stage}>"
    assert (card["body"]["status"], card["body"]["monetaryValue"]) == (status, 2400.0)
    assert card["body"]["contactId"] == "<new contact C-7>"
