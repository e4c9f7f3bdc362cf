"""Issue 8, item 10: a config that validates works. `validate` warns, with the fix, when the
config could not sync; `init --sandbox` writes one that can."""

from __future__ import annotations

from pathlib import Path

import httpx2
import yaml
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner, Result

from ghlsync.cli import app
from ghlsync.ghl._webhooks import load_ed25519_public_key
from ghlsync.mapping import load_config
from ghlsync.sandbox import SandboxServer

_CLEAN = {
    "GHLSYNC_CONFIG": "",
    "GHLSYNC_GHL_CLIENT_ID": "",
    "GHLSYNC_GHL_TOKEN": "",
    "GHLSYNC_GHL_LOCATION_ID": "",
    "GHLSYNC_DRIPJOBS_SECRET": "",
}
_READY = (
    "ghl: {location_id: loc_1, token: pit-0123456789}\n"
    "dripjobs: {secret: a-long-enough-secret-value}\n"
)


def _run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**_CLEAN, **env})


def test_an_empty_config_validates_with_loud_warnings_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "ghlsync.yaml"
    path.write_text("database_url: sqlite:///x.db\n")

    relaxed = _run("validate", "--config", str(path))
    strict = _run("validate", "--config", str(path), "--strict")

    assert relaxed.exit_code == 0 and strict.exit_code == 1
    out = relaxed.output
    assert "NOT READY to sync: 2 warnings" in out
    assert f"WARNING: {path}: dripjobs.secret: not set" in out
    assert "GHLSYNC_DRIPJOBS_SECRET" in out  # the fix
    assert f"WARNING: {path}: ghl.location_id and ghl.token: not set" in out
    assert "GHLSYNC_GHL_TOKEN" in out and "locations add" in out


def test_the_webhook_key_is_asked_for_only_when_a_ghl_app_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "ghlsync.yaml"
    path.write_text(_READY)

    plain = _run("validate", "--config", str(path), "--strict")
    with_app = _run("validate", "--config", str(path), GHLSYNC_GHL_CLIENT_ID="app1-x")
    path.write_text(
        _READY.replace("}\ndripjobs", ", app_id: app1, webhook_public_key: ab}\ndripjobs")
    )
    keyed = _run("validate", "--config", str(path), "--strict")

    assert plain.exit_code == 0 and "WARNING" not in plain.output
    assert "ghl.webhook_public_key: not set while a GHL app is configured" in with_app.output
    assert "/_sandbox/webhook-public-key" in with_app.output
    assert keyed.exit_code == 0 and "WARNING" not in keyed.output


def test_init_sandbox_writes_a_config_that_is_ready(tmp_path: Path, sandbox: SandboxServer) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"

    assert _run("init", "--sandbox", sandbox.url, "--path", str(first)).exit_code == 0
    assert _run("init", "--sandbox", sandbox.url, "--path", str(second)).exit_code == 0
    validated = _run("validate", "--config", str(first), "--strict", GHLSYNC_GHL_CLIENT_ID="x")

    assert validated.exit_code == 0, validated.output
    assert "WARNING" not in validated.output
    config = load_config(first, environ={})
    secret = config.dripjobs.secret
    assert secret is not None and len(secret.reveal()) >= 32
    assert yaml.safe_load(second.read_text())["dripjobs"]["secret"] != secret.reveal()
    assert config.ghl.app_id == "sandbox"
    pem = httpx2.get(f"{sandbox.url}/_sandbox/webhook-public-key").text
    assert _raw(config.ghl.webhook_public_key) == _raw(pem)
    assert "# the secret your Zap sends" in first.read_text()  # the preset's comments stay


def _raw(key: str | None) -> bytes:
    loaded = load_ed25519_public_key(key)
    assert loaded is not None
    return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_init_sandbox_without_a_running_sandbox_still_writes_and_says_what_is_missing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ghlsync.yaml"
    result = _run("init", "--sandbox", "http://127.0.0.1:9", "--path", str(path))

    assert result.exit_code == 0
    assert "did not give its webhook key" in result.output
    assert load_config(path, environ={}).dripjobs.secret is not None
