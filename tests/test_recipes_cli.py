"""`ghlsync recipes list|show|test` and the recipes part of `ghlsync preview`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ghlsync.cli import app

CONFIG = """\
recipes:
  - name: new-lead-onboarding
    when: {trigger: dripjobs.lead.created}
    if: {lead_source: {in: [Website, Angi]}}
    do:
      - create_task: {title: "Call {first_name} within 5 minutes", due: "+0d +5m"}
      - add_tags: [new-lead]
      - add_to_workflow: {workflow: "New lead nurture"}
  - name: estimate-follow-up
    enabled: false
    when: {trigger: dripjobs.task.completed}
    do: [{create_task: {title: "Follow up", due: "+0d 10:00"}}]
    after: {wait: 3d, unless: dripjobs.proposal.accepted}
"""
LEAD = {
    "event": "lead.created",
    "customer_id": "C1",
    "first_name": "Ann",
    "email": "ann@example.com",
    "lead_source": "Angi",
}


def _files(tmp_path: Path) -> tuple[str, str]:
    config, event = tmp_path / "ghlsync.yaml", tmp_path / "lead.json"
    config.write_text(CONFIG)
    event.write_text(json.dumps(LEAD))
    return str(config), str(event)


def test_list_and_show(tmp_path: Path) -> None:
    config, _ = _files(tmp_path)
    listed = CliRunner().invoke(app, ["recipes", "list", "--config", config])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "on  new-lead-onboarding: when dripjobs.lead.created -> create_task, add_tags, "
        "add_to_workflow",
        "off estimate-follow-up: when dripjobs.task.completed, after 3d -> create_task",
    ]
    shown = CliRunner().invoke(app, ["recipes", "show", "estimate-follow-up", "--config", config])
    assert shown.exit_code == 0, shown.output
    assert "wait: 3d" in shown.output and "unless:" in shown.output
    missing = CliRunner().invoke(app, ["recipes", "show", "estimate-folow-up", "--config", config])
    assert missing.exit_code == 1
    assert "did you mean 'estimate-follow-up'" in missing.output


def test_test_shows_the_calls_and_sends_nothing(tmp_path: Path) -> None:
    config, event = _files(tmp_path)
    result = CliRunner().invoke(
        app, ["recipes", "test", "new-lead-onboarding", event, "--config", config, "--json"]
    )
    assert result.exit_code == 0, result.output
    [found] = json.loads(result.output)
    assert found["runs"] is True
    calls = [(c["method"], c["path"]) for s in found["steps"] for c in s["calls"]]
    assert calls == [
        ("POST", "/contacts/%3Ccontact%20of%20customer%20C1%3E/tasks"),
        ("POST", "/contacts/%3Ccontact%20of%20customer%20C1%3E/tags"),
        (
            "POST",
            "/contacts/%3Ccontact%20of%20customer%20C1%3E/workflow/"
            "%3Cworkflow%20New%20lead%20nurture%3E",
        ),
    ]
    assert found["steps"][0]["calls"][0]["body"]["title"] == "Call Ann within 5 minutes"


def test_preview_shows_recipes_and_timers(tmp_path: Path) -> None:
    config, event = _files(tmp_path)
    (tmp_path / "done.json").write_text(
        json.dumps(
            {"event": "task.completed", "customer_id": "C1", "task_id": "T1", "email": "a@b.co"}
        )
    )
    text = CliRunner().invoke(app, ["preview", event, "--config", config])
    assert text.exit_code == 0, text.output
    assert "recipes for dripjobs.lead.created; nothing was sent:" in text.output
    assert "- new-lead-onboarding: runs now" in text.output
    off = CliRunner().invoke(app, ["preview", str(tmp_path / "done.json"), "--config", config])
    assert "recipes" not in off.output  # the follow-up is off: nothing to show
    on = tmp_path / "on.yaml"
    on.write_text(CONFIG.replace("enabled: false", "enabled: true"))
    timer = CliRunner().invoke(app, ["preview", str(tmp_path / "done.json"), "--config", str(on)])
    assert "- estimate-follow-up: timer: runs after 3d, at " in timer.output
    assert "unless dripjobs.proposal.accepted comes first" in timer.output


def test_invalid_recipes_stop_commands_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text(CONFIG.replace("add_tags", "add_tag"))
    result = CliRunner().invoke(app, ["validate", "--config", str(config)])
    assert result.exit_code == 1
    assert "recipes[0].do[1]: 'add_tag' is not an action; did you mean 'add_tags'" in result.output
    listed = CliRunner().invoke(app, ["recipes", "list", "--config", str(config)])
    assert listed.exit_code == 2
