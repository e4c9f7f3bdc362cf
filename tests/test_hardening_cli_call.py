"""`ghlsync call` reads the config like every other command (issue 8, item 15).

A config written by `ghlsync init --sandbox URL` is all `call get-contacts` needs; a server
that cannot be reached is named in the one error line.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from typer.testing import CliRunner, Result

from ghlsync.cli import app
from ghlsync.sandbox import SandboxServer

_CLEAN = {
    "GHLSYNC_CONFIG": "",
    "GHLSYNC_GHL_BASE_URL": "",
    "GHLSYNC_GHL_TOKEN": "",
    "GHLSYNC_GHL_LOCATION_ID": "",
}


def _run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**_CLEAN, **env})


def test_a_sandbox_config_is_enough_to_call_get_contacts(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    config = tmp_path / "ghlsync.yaml"
    assert _run("init", "--sandbox", sandbox.url, "--path", str(config)).exit_code == 0
    created = _run(
        "call", "upsert-contact", "--body", '{"email": "ada@example.com"}', "--config", str(config)
    )
    assert created.exit_code == 0, created.output

    by_flag = _run("call", "get-contacts", "--config", str(config))
    by_env = _run("call", "get-contacts", GHLSYNC_CONFIG=str(config))

    for result in (by_flag, by_env):
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert [c["email"] for c in answer["contacts"]] == ["ada@example.com"]
    # The location of the config was sent, and the config's token authorised it.
    reads = [r for r in sandbox.state.requests if r["method"] == "GET"]
    assert [r["status"] for r in reads] == [200, 200]
    assert all(r["location"] == sandbox.location_id for r in reads)


def test_flags_still_override_the_config(tmp_path: Path, sandbox: SandboxServer) -> None:
    config = tmp_path / "ghlsync.yaml"
    config.write_text("ghl:\n  base_url: http://127.0.0.1:9\n  token: wrong-token-value\n")
    config.chmod(0o600)

    result = _run(
        "call", "get-contacts", "--config", str(config), "--base-url", sandbox.url,
        "--token", sandbox.token, "--location", sandbox.location_id,
    )  # fmt: skip

    assert result.exit_code == 0, result.output


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "ghlsync.yaml"
    body = f"ghl:\n  base_url: http://127.0.0.1:{port}\n  token: t-0123456789abcd\n"
    config.write_text(body + "  location_id: loc_x\n")
    config.chmod(0o600)

    result = _run("call", "get-contacts", "--config", str(config))

    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"cannot reach GHL at http://127.0.0.1:{port}" in lines[0]
    assert "ghl.base_url" in lines[0]
