"""ghlsync.yaml: the preset, load order, environment overrides, and errors people can act on."""

from __future__ import annotations

import fnmatch
import tomllib
from importlib import resources
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ghlsync.cli import _mapping
from ghlsync.mapping import (
    ENV_OVERRIDES,
    AppConfig,
    ConfigError,
    load_config,
    preset_text,
    render_preset,
)

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_EVENTS = {
    "customer.created", "customer.updated", "lead.created", "deal.stage_changed",
    "project.stage_changed", "proposal.accepted", "task.created", "task.updated",
    "task.completed", "task.deleted", "note.created", "note.updated",
    "appointment.scheduled", "appointment.updated", "appointment.canceled",
    # the other Zapier triggers of DripJobs
    "proposal.rejected", "proposal.viewed", "project.completed", "booking_form.submitted",
    "job_costing.completed", "invoice.created", "payment.received", "card_label.changed",
    "text_message.received", "estimate.scheduled", "custom_event.scheduled",
}  # fmt: skip
DEFAULT_FIELDS = {
    "customer_id", "first_name", "last_name", "email", "phone", "address", "city", "state",
    "zip", "lead_source", "company_name", "deal_stage", "project_stage", "task_id",
    "task_title", "task_description", "task_due", "task_status", "task_assignee", "note_id",
    "note_body", "appointment_id", "appointment_title", "appointment_start", "appointment_end",
    "appointment_status", "updated_at",
}  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "ghlsync.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return caught.value.problems


def test_preset_has_every_default_event() -> None:
    assert set(AppConfig.default().events) == DEFAULT_EVENTS


def test_preset_reads_every_default_field() -> None:
    config = AppConfig.default()
    read: set[str] = set()
    for entity in ("contact", "task", "note", "appointment"):
        for rule in config.fields.for_type(entity):
            read.update(rule.sources)
    for event in config.events.values():
        read.update({event.id, event.contact or "", event.timestamp or ""})
    read.update(rule.source or "" for rule in config.tags)
    assert read >= DEFAULT_FIELDS


def test_preset_ships_as_package_data() -> None:
    assert resources.files("ghlsync.mapping").joinpath("preset.yaml").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["ghlsync"]
    assert any(fnmatch.fnmatch("mapping/preset.yaml", g) for g in globs)


def test_preset_is_commented_and_matches_the_defaults_of_the_models() -> None:
    text = preset_text()
    assert text.count("#") > 40
    preset = AppConfig.default()
    assert preset.defaults.phone_region == "US"
    assert preset.defaults.timezone == "America/New_York"
    assert preset.dripjobs.max_body_bytes == 256 * 1024
    assert preset.ghl.token is None


def test_without_any_file_the_preset_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}) == AppConfig.default()


def test_load_order_path_then_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "database_url: sqlite:///cwd.db\n")
    other = write(tmp_path, "database_url: sqlite:///env.db\n", "other.yaml")
    explicit = write(tmp_path, "database_url: sqlite:///arg.db\n", "arg.yaml")
    assert load_config(environ={}).database_url == "sqlite:///cwd.db"
    env = {"GHLSYNC_CONFIG": str(other)}
    assert load_config(environ=env).database_url == "sqlite:///env.db"
    assert load_config(explicit, environ=env).database_url == "sqlite:///arg.db"


def test_a_partial_file_keeps_defaults_for_the_rest(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "worker: {concurrency: 9}\n"), environ={})
    assert config.worker.concurrency == 9
    assert config.worker.max_attempts == 8
    assert set(config.events) == set(AppConfig.default().events)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ghl: {base_url: https://file.example, token: file-token-123456}\n"
        "database_url: sqlite:///file.db\n",
    )
    env = {
        "GHLSYNC_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "GHLSYNC_GHL_BASE_URL": "http://127.0.0.1:8765",
        "GHLSYNC_GHL_LOCATION_ID": "loc_env",
        "GHLSYNC_GHL_TOKEN": "env-token-abcdefgh",
        "GHLSYNC_GHL_CALENDAR_ID": "cal_env",
        "GHLSYNC_DRIPJOBS_SECRET": "dj-secret-0123456789",
        "GHLSYNC_SECRET_KEY": "not-a-config-key",
    }
    config = load_config(path, environ=env)
    assert config.database_url == "postgresql+psycopg://u@h/db"
    assert config.ghl.base_url == "http://127.0.0.1:8765"
    assert config.ghl.location_id == "loc_env"
    assert config.ghl.token is not None and config.ghl.token.reveal() == "env-token-abcdefgh"
    assert config.ghl.calendar_id == "cal_env"
    assert config.dripjobs.secret is not None
    assert config.dripjobs.secret.reveal() == "dj-secret-0123456789"
    assert "GHLSYNC_SECRET_KEY" not in ENV_OVERRIDES


def test_empty_environment_values_do_not_override(tmp_path: Path) -> None:
    path = write(tmp_path, "ghl: {location_id: loc_file}\n")
    config = load_config(path, environ={"GHLSYNC_GHL_LOCATION_ID": ""})
    assert config.ghl.location_id == "loc_file"


def test_secrets_are_masked_in_reprs_and_dumps(tmp_path: Path) -> None:
    text = "ghl: {token: pit-0123456789abcdef}\ndripjobs: {secret: 98765432109876543}\n"
    path = write(tmp_path, text)
    config = load_config(path, environ={})
    assert "0123456789abcdef" not in repr(config)
    assert "0123456789abcdef" not in str(config.model_dump())
    assert config.dripjobs.secret is not None
    assert config.dripjobs.secret.reveal() == "98765432109876543"  # YAML read it as a number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "events:\n  task.created: {entity: task, id: task_id, contact: c, action: crate}\n",
            "ghlsync.yaml: events.task.created.action: 'crate' is not one of "
            "upsert, delete, complete, cancel",
        ),
        (
            "ghl: {tokn: x}\n",
            "ghlsync.yaml: ghl.tokn: unknown key; allowed: base_url, location_id, token, "
            "calendar_id, timezone, webhook_public_key, app_id, api_version "
            "(did you mean 'token'?)",
        ),
        ("colour: blue\n", "ghlsync.yaml: colour: unknown key; allowed: database_url, ghl,"),
        (
            "defaults: {timezone: Mars/Olympus}\n",
            "ghlsync.yaml: defaults.timezone: 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            "worker: {concurrency: 0}\n",
            "ghlsync.yaml: worker.concurrency: 0 is invalid: must be greater than or equal to 1",
        ),
        (
            "fields:\n  contact:\n    - {from: phone, to: phone, transform: phone}\n",
            "ghlsync.yaml: fields.contact[0].transform[0]: 'phone' is not one of strip, lower,",
        ),
        (
            "fields:\n  contact:\n    - {from: email, to: emial}\n",
            "ghlsync.yaml: fields.contact[0].to: 'emial' is not a GHL contact field; one of",
        ),
        (
            "events:\n  note.created: {entity: note, id: n, contact: c, action: complete}\n",
            "ghlsync.yaml: events.note.created.action: 'complete' is not allowed for a note; "
            "one of delete, upsert",
        ),
        (
            "events:\n  task.created: {entity: task, id: task_id}\n",
            "ghlsync.yaml: events.task.created.contact: None is required",
        ),
        (
            "events:\n  e: {entity: task, id: t, contact: c, set: {colour: red}}\n",
            "ghlsync.yaml: events.e.set.colour: 'colour' is not a GHL task field",
        ),
        (
            "fields:\n  contact:\n    - {from: name, to: firstName, transform: name_split}\n",
            "ghlsync.yaml: fields.contact[0]: {'from': ['name'], 'to': ['firstName']} needs one "
            "'from' field and two 'to' fields",
        ),
        (
            "tags:\n  - {from: deal_stage, tag: deal}\n",
            "ghlsync.yaml: tags[0].tag: 'deal' must contain {value} when 'from' is set",
        ),
        (
            "tags:\n  - {from: deal_stage, tag: 'deal:{value}', replace_prefix: 'stage:'}\n",
            "ghlsync.yaml: tags[0].replace_prefix: 'stage:' must be the start of the tag",
        ),
        (
            "custom_fields: {roof: roof_type}\n",
            "ghlsync.yaml: custom_fields.roof.key: 'roof_type' is invalid: String should match",
        ),
        ("events:\n  e: {id: x}\n", "ghlsync.yaml: events.e.entity: is required"),
        (
            "ghl: {base_url: services.leadconnectorhq.com}\n",
            "ghlsync.yaml: ghl.base_url: 'services.leadconnectorhq.com' is invalid: String should",
        ),
        ("- a\n- b\n", "ghlsync.yaml: expected a mapping of keys (database_url, ghl,"),
        ("ghl: {base_url: [\n", "ghlsync.yaml:2:1: invalid YAML"),
    ],
)
def test_errors_name_file_key_value_and_what_is_allowed(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(write(tmp_path, text))
    assert any(p.startswith(str(tmp_path / expected)) for p in found), found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "ghl: {tokn: x}\nworker: {concurrency: 0, lease: 1}\n"))
    assert len(found) == 3


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]


def test_render_preset_for_the_sandbox_loads_with_its_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, render_preset("http://127.0.0.1:8765/"))
    config = load_config(path, environ={})
    assert config.ghl.base_url == "http://127.0.0.1:8765"
    assert config.ghl.location_id == "loc_sandbox"
    assert config.ghl.token is not None and config.ghl.token.reveal() == "sandbox-token"
    assert config.ghl.calendar_id == "cal_sandbox"
    assert config.ghl.app_id == "sandbox"  # so the sandbox's signed installs are accepted
    assert config.events == AppConfig.default().events


runner = CliRunner()
# Only this area's commands: the tests must not depend on other areas' modules importing.
app = typer.Typer()
_mapping.register(app)


def test_cli_init_writes_the_preset_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "ghlsync.yaml"
    result = runner.invoke(app, ["init", "--path", str(target)])
    assert result.exit_code == 0, result.output
    written = target.read_text()
    assert written.startswith(preset_text())  # the preset, then the two environments
    assert "environment: production\n" in written and "  sandbox:" in written
    target.write_text("# mine\n")
    refused = runner.invoke(app, ["init", "--path", str(target)])
    assert refused.exit_code == 1
    assert target.read_text() == "# mine\n"
    forced = runner.invoke(app, ["init", "--path", str(target), "--force", "--sandbox", "http://s"])
    assert forced.exit_code == 0
    assert "loc_sandbox" in target.read_text()


def test_cli_validate_reports_ok_or_every_problem(tmp_path: Path) -> None:
    good = write(tmp_path, preset_text(), "good.yaml")
    ok = runner.invoke(app, ["validate", "--config", str(good)])
    assert ok.exit_code == 0
    assert f"OK: {good}: {len(DEFAULT_EVENTS)} events" in ok.output
    bad = write(tmp_path, "ghl: {tokn: x}\n", "bad.yaml")
    failed = runner.invoke(app, ["validate", "--config", str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}: ghl.tokn: unknown key" in failed.output


def test_a_file_without_mapping_sections_keeps_the_preset_ones(tmp_path: Path) -> None:
    path = tmp_path / "ghlsync.yaml"
    path.write_text("ghl:\n  location_id: loc_1\n")
    config = load_config(path, environ={})
    preset = AppConfig.default()
    assert config.ghl.location_id == "loc_1"
    assert set(config.events) == set(preset.events) and len(config.events) == len(DEFAULT_EVENTS)
    assert config.fields == preset.fields and config.tags == preset.tags


def test_a_file_with_events_replaces_the_preset_events(tmp_path: Path) -> None:
    path = tmp_path / "ghlsync.yaml"
    path.write_text("events:\n  lead.created:\n    entity: contact\n    id: customer_id\n")
    config = load_config(path, environ={})
    assert set(config.events) == {"lead.created"}
