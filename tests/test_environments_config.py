"""Issue 12 §3: named environments in one ghlsync.yaml, chosen by --env, GHLSYNC_ENV or the
file's `environment:` key; `init` writes a sandbox and a production environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner, Result

from ghlsync.cli import app
from ghlsync.mapping import ConfigError, load_config, selected_environment

_FILE = """
database_url: sqlite:///base.db
ghl: {location_id: loc_prod, token: prod-token, timezone: America/Chicago}
writeback:
  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  actions: {create_lead: {url: "https://hooks.zapier.com/prod"}}
environment: production
environments:
  production: {}
  sandbox:
    database_url: sqlite:///sandbox.db
    ghl: {base_url: "http://127.0.0.1:8765", location_id: loc_sandbox, token: sandbox-token}
    writeback:
      actions: {create_lead: {url: "http://127.0.0.1:8766/catch"}}
"""
_CLEAN = {"GHLSYNC_ENV": "", "GHLSYNC_CONFIG": "", "GHLSYNC_GHL_TOKEN": ""}


def _write(tmp_path: Path, text: str = _FILE) -> Path:
    path = tmp_path / "ghlsync.yaml"
    path.write_text(text)
    return path


def test_the_files_default_environment_is_the_base_keys_with_its_overrides(
    tmp_path: Path,
) -> None:
    config = load_config(_write(tmp_path), environ={})

    assert config.environment == "production"
    assert config.database_url == "sqlite:///base.db"
    assert config.ghl.location_id == "loc_prod"
    assert set(config.environments) == {"production", "sandbox"}


def test_an_environment_overrides_database_ghl_and_writeback_key_by_key(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path), environ={"GHLSYNC_ENV": "sandbox"})

    assert config.environment == "sandbox"
    assert config.database_url == "sqlite:///sandbox.db"
    assert config.ghl.base_url == "http://127.0.0.1:8765"
    assert config.ghl.token is not None and config.ghl.token.reveal() == "sandbox-token"
    assert config.ghl.timezone == "America/Chicago"  # not overridden: the base key stays
    assert str(config.writeback.actions["create_lead"].url) == "http://127.0.0.1:8766/catch"
    assert config.writeback.secret is not None  # the base secret stays
    assert config.events == load_config(_write(tmp_path), environ={}).events  # one mapping


def test_env_option_beats_ghlsync_env_which_beats_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with selected_environment("sandbox"):
        chosen = load_config(path, environ={"GHLSYNC_ENV": "production"})
    from_variable = load_config(path, environ={"GHLSYNC_ENV": "sandbox"})

    assert chosen.environment == "sandbox" and from_variable.environment == "sandbox"
    assert load_config(path, environ={}).environment == "production"  # the block ended


def test_ghlsync_variables_still_override_the_chosen_environment(tmp_path: Path) -> None:
    env = {"GHLSYNC_ENV": "sandbox", "GHLSYNC_GHL_TOKEN": "from-the-shell"}
    config = load_config(_write(tmp_path), environ=env)

    assert config.ghl.token is not None and config.ghl.token.reveal() == "from-the-shell"


def test_an_unknown_environment_names_the_file_and_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"GHLSYNC_ENV": "staging"})
    assert str(caught.value) == (
        f"{path}: environments: 'staging' is not defined; allowed: production, sandbox"
    )
    bare = _write(tmp_path, "ghl: {}\n")
    with pytest.raises(ConfigError, match="has no environments: section"):
        load_config(bare, environ={"GHLSYNC_ENV": "sandbox"})


def test_a_mistake_in_an_environment_not_running_is_still_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, _FILE.replace("production: {}", "production: {ghl: {tokn: x}}"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"GHLSYNC_ENV": "sandbox"})
    assert "environments.production.ghl.tokn" in str(caught.value)


def _run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**_CLEAN, **env})


def test_every_command_that_reads_the_config_takes_env(tmp_path: Path) -> None:
    path = _write(tmp_path)
    by_option = _run("validate", "--config", str(path), "--env", "sandbox")
    by_variable = _run("validate", "--config", str(path), GHLSYNC_ENV="sandbox")
    unknown = _run("status", "--config", str(path), "--env", "staging")

    assert by_option.exit_code == 0, by_option.output
    assert f"OK: {path} (environment sandbox)" in by_option.output
    assert f"OK: {path} (environment sandbox)" in by_variable.output
    assert unknown.exit_code == 2 and "'staging' is not defined" in unknown.output
    root = typer.main.get_command(app)
    with_config, with_env = _commands(root, "--config"), _commands(root, "--env")
    assert len(with_config) > 15 and "dlq list" in with_config and "check" in with_config
    assert sorted(set(with_config) - set(with_env)) == []
    assert "--env" in _run("dlq", "list", "--help").output  # and it shows in --help


def _commands(command: Any, option: str, prefix: str = "") -> list[str]:
    """Every command (sub-commands included) that has `option`."""
    children = getattr(command, "commands", None)
    if children is not None:
        return [
            name
            for sub, child in children.items()
            for name in _commands(child, option, f"{prefix} {sub}".strip())
        ]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    return [prefix] if option in options else []


def test_init_writes_a_sandbox_and_a_production_environment(tmp_path: Path) -> None:
    path = tmp_path / "ghlsync.yaml"
    assert _run("init", "--path", str(path)).exit_code == 0

    production = load_config(path, environ={})
    sandbox = load_config(path, environ={"GHLSYNC_ENV": "sandbox"})

    assert production.environment == "production"
    assert production.ghl.base_url == "https://services.leadconnectorhq.com"
    assert production.database_url.endswith("ghlsync.db")
    assert sandbox.ghl.base_url == "http://127.0.0.1:8765"
    assert sandbox.ghl.location_id == "loc_sandbox" and sandbox.ghl.calendar_id == "cal_sandbox"
    assert sandbox.database_url.endswith("ghlsync-sandbox.db")  # never the production store


def test_a_loose_file_with_a_token_in_an_environment_draws_the_warning(tmp_path: Path) -> None:
    path = _write(
        tmp_path, _FILE.replace("ghl: {location_id: loc_prod, token: prod-token, ", "ghl: {")
    )
    path.chmod(0o644)  # the only token left is the sandbox environment's

    result = _run("status", "--config", str(path), "--env", "sandbox")

    assert f"chmod 600 {path}" in result.output  # then: no store yet (exit 1)
