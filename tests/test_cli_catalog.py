"""`ghlsync catalog`: every trigger and action a recipe can use, from the registries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ghlsync.cli import app
from ghlsync.cli._catalog import build, readme_line
from ghlsync.engine.flows.recipes import ACTIONS, TRIGGERS
from ghlsync.mapping import AppConfig

ENTRY_KEYS = {"id", "side", "kind", "description", "inputs", "operation"}


@pytest.fixture(autouse=True)
def _preset_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GHLSYNC_CONFIG", raising=False)


def _json(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["catalog", "--json", *args])
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_json_lists_the_registries_and_nothing_else() -> None:
    found = _json()
    triggers, actions = found["triggers"], found["actions"]
    assert isinstance(triggers, list) and isinstance(actions, list)

    assert [t["id"] for t in triggers] == list(TRIGGERS)
    assert [a["id"] for a in actions] == sorted(
        ACTIONS, key=lambda i: (i.startswith("dripjobs."), i)
    )
    assert found["count"] == len(TRIGGERS) + len(ACTIONS) >= 126  # the promise
    for entry in [*triggers, *actions]:
        assert set(entry) == ENTRY_KEYS
        assert entry["description"] and entry["operation"]
        assert all(set(i) == {"name", "type", "required", "description"} for i in entry["inputs"])
    kinds = {(e["kind"], e["side"]) for e in [*triggers, *actions]}
    assert kinds == {
        ("trigger", "dripjobs"), ("trigger", "ghl"), ("action", "ghl"), ("action", "dripjobs")
    }  # fmt: skip
    assert sum(found["counts"].values()) == found["count"]  # type: ignore[attr-defined]


def test_an_entry_shows_inputs_and_operation() -> None:
    found = _json()
    by_id = {e["id"]: e for e in [*found["triggers"], *found["actions"]]}  # type: ignore[misc]

    task = by_id["create_task"]
    assert (task["side"], task["kind"]) == ("ghl", "action")
    assert task["operation"] == "POST /contacts/{contactId}/tasks"
    title = next(i for i in task["inputs"] if i["name"] == "title")
    assert title["required"] is True
    lead = by_id["dripjobs.lead.created"]
    assert lead["operation"] == "POST /hooks/dripjobs/lead.created"
    assert {"name": "customer_id", "required": True}.items() <= lead["inputs"][0].items()
    assert by_id["ghl.OpportunityStageUpdate"]["kind"] == "trigger"


def test_every_preset_event_is_listed() -> None:
    ids = {t["id"] for t in _json()["triggers"]}  # type: ignore[attr-defined]

    assert {f"dripjobs.{e}" for e in AppConfig.default().events} <= ids


def test_a_configured_event_appears_as_a_trigger(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("events:\n  job.won: {entity: contact, id: job_customer}\n")
    found = _json("--config", str(config))

    events = {t["id"]: t for t in found["triggers"]}  # type: ignore[attr-defined]
    assert events["dripjobs.job.won"]["inputs"][0]["name"] == "job_customer"


def test_tables_name_the_counts() -> None:
    result = CliRunner().invoke(app, ["catalog"])

    assert result.exit_code == 0, result.output
    dripjobs = sum(1 for t in TRIGGERS if t.startswith("dripjobs."))
    assert f"Triggers: {len(TRIGGERS)} ({dripjobs} DripJobs" in result.output
    assert f"Actions: {len(ACTIONS)} (" in result.output
    assert f"{len(TRIGGERS) + len(ACTIONS)} triggers and actions" in result.output
    assert "dripjobs.appointment.scheduled" in result.output


def test_a_broken_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("ghl: {tokn: x}\n")
    result = CliRunner().invoke(app, ["catalog", "--config", str(config)])

    assert result.exit_code == 2
    assert "tokn" in result.output


def test_the_readme_count_is_the_catalog_s() -> None:
    line = readme_line(build(AppConfig.default()))
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()

    assert f"**{len(TRIGGERS) + len(ACTIONS)} triggers and actions**" in line
    assert line in readme.splitlines(), "README's count is stale: run ./scripts/catalog-count"
