"""No traceback reaches a user (issue 8, item 9).

Each failure a user can cause is one line on stderr (what, why, what to do) and a non-zero
exit, never an uncaught exception: a malformed or wrong GHLSYNC_SECRET_KEY, a store written by
a newer ghlsync, `locations add` without the OAuth client, a busy port, a stray OAuth callback.
`locations list/show` need no key unless `--reveal`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from ghlsync._secret import Secret
from ghlsync.cli import app
from ghlsync.engine.locations._rows import register_location
from ghlsync.ghl._crypto import TokenCipher, generate_key, key_fingerprint
from ghlsync.ghl._oauth import TokenSet
from ghlsync.ghl._vault import TokenVault
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, migrate

ROOT = Path(__file__).resolve().parent.parent
BANNERS = ("Uvicorn running", "GHL sandbox on", "Application startup")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config whose store holds one location sealed with `site_key` (in `key.txt`)."""
    key = generate_key()
    (tmp_path / "key.txt").write_text(key)
    config = tmp_path / "ghlsync.yaml"
    config.write_text("database_url: sqlite:///ghlsync.db\n")
    config.chmod(0o600)
    engine = create_engine(f"sqlite:///{tmp_path / 'ghlsync.db'}")
    migrate(engine)
    register_location(engine, TokenCipher([key]), "loc_b", now=1.0)
    engine.dispose()
    return config


def _key(site: Path) -> str:
    return (site.parent / "key.txt").read_text()


def _run(*args: str, **env: str) -> Result:
    base = {"GHLSYNC_DATABASE_URL": "", "GHLSYNC_CONFIG": "", "GHLSYNC_SECRET_KEY": ""}
    base |= {"GHLSYNC_GHL_CLIENT_ID": "", "GHLSYNC_GHL_CLIENT_SECRET": ""}
    return CliRunner().invoke(app, list(args), env={**base, **env})


def _one_clear_line(result: Result, code: int, *words: str) -> None:
    """Exited `code` through typer (no uncaught exception), saying `words` in one line."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("ghlsync "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not any(banner in result.output for banner in BANNERS)


def test_serve_with_a_malformed_key(site: Path) -> None:
    result = _run("serve", "--config", str(site), "--port", "0", GHLSYNC_SECRET_KEY="nope")
    _one_clear_line(result, 2, "GHLSYNC_SECRET_KEY", "ghlsync auth new-key")


def test_serve_with_the_wrong_key_names_the_key_it_needs(site: Path) -> None:
    result = _run("serve", "--config", str(site), "--port", "0", GHLSYNC_SECRET_KEY=generate_key())
    _one_clear_line(result, 2, key_fingerprint(_key(site)), "GHLSYNC_SECRET_KEY")


def test_serve_with_a_store_from_a_newer_ghlsync(site: Path) -> None:
    engine = create_engine(f"sqlite:///{site.parent / 'ghlsync.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_next'"))
    engine.dispose()

    result = _run("serve", "--config", str(site), "--port", "0", GHLSYNC_SECRET_KEY=_key(site))

    _one_clear_line(result, 1, "9999_next", "newer ghlsync", "upgrade ghlsync")


@pytest.mark.parametrize("key", ["", "nope", "wrong"])
def test_locations_list_and_show_need_no_key(site: Path, key: str) -> None:
    given = generate_key() if key == "wrong" else key

    listed = _run("locations", "list", "--config", str(site), GHLSYNC_SECRET_KEY=given)
    shown = _run("locations", "show", "loc_b", "--config", str(site), GHLSYNC_SECRET_KEY=given)

    assert listed.exit_code == 0 and "loc_b" in listed.output, listed.output
    assert shown.exit_code == 0 and "loc_b" in shown.output, shown.output
    assert "Traceback" not in listed.output + shown.output


def test_locations_show_reveal_needs_the_right_key(site: Path) -> None:
    args = ("locations", "show", "loc_b", "--reveal", "--config", str(site))

    malformed = _run(*args, GHLSYNC_SECRET_KEY="nope")
    wrong = _run(*args, GHLSYNC_SECRET_KEY=generate_key())
    right = _run(*args, GHLSYNC_SECRET_KEY=_key(site))

    _one_clear_line(malformed, 2, "GHLSYNC_SECRET_KEY")
    _one_clear_line(wrong, 2, "GHLSYNC_SECRET_KEY", key_fingerprint(_key(site)))
    assert right.exit_code == 0, right.output


def test_locations_add_from_an_agency_without_the_oauth_client(site: Path) -> None:
    key = _key(site)
    engine = create_engine(f"sqlite:///{site.parent / 'ghlsync.db'}")
    agency = TokenSet(
        Secret("agency-access-0123456789"),
        Secret("agency-refresh-0123456789"),
        expires_at=4_000_000_000.0,
        user_type="Company",
        company_id="comp_1",
    )
    TokenVault(engine, TokenCipher([key])).save("comp_1", agency)
    engine.dispose()

    result = _run(
        "locations", "add", "loc_c", "--from-company", "comp_1", "--config", str(site),
        GHLSYNC_SECRET_KEY=key,
    )  # fmt: skip

    _one_clear_line(result, 2, "GHLSYNC_GHL_CLIENT_ID", "GHLSYNC_GHL_CLIENT_SECRET", "--token")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_serve_on_a_busy_port_says_so_before_any_banner(site: Path, busy_port: int) -> None:
    result = _run("serve", "--config", str(site), "--port", str(busy_port))
    _one_clear_line(result, 2, f"port {busy_port}", "already in use", "--port")


def test_sandbox_on_a_busy_port_says_so_before_any_banner(busy_port: int) -> None:
    result = _run("sandbox", "--port", str(busy_port))
    _one_clear_line(result, 2, f"port {busy_port}", "already in use", "--port")


def test_login_with_only_a_forged_state_times_out_in_one_line(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    args = ["auth", "login", "--redirect-port", "0", "--no-browser", "--timeout", "3"]
    args += ["--base-url", sandbox.url, "--marketplace-url", sandbox.url]
    args += ["--database-url", f"sqlite:///{tmp_path / 'ghlsync.db'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHLSYNC_")}
    env |= {"GHLSYNC_SECRET_KEY": generate_key(), "GHLSYNC_GHL_CLIENT_ID": "sandbox-client"}
    env |= {"GHLSYNC_GHL_CLIENT_SECRET": "sandbox-secret"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ghlsync.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    url = next(line.strip() for line in proc.stderr if line.strip().startswith("http"))
    callback = httpx2.get(url).headers["location"].split("?")[0]
    forged = httpx2.get(callback, params={"code": "code-x", "state": "forged"})

    _, err = proc.communicate(timeout=30)

    assert forged.status_code == 400
    assert proc.returncode == 1
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert "no answer from GHL for this login" in last and "1 request(s)" in last
    assert "Traceback" not in err


def _commands(group: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in getattr(group, "commands", {}).items():
        yield (*prefix, name)
        yield from _commands(command, (*prefix, name))


def test_every_help_page_shows_flags_as_flags() -> None:
    import typer.main

    commands = list(_commands(typer.main.get_command(app)))
    assert ("locations", "list") in commands and ("dlq", "show") in commands
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, (command, result.output)
        assert "<bool>" not in result.output, (command, result.output)
    status = CliRunner().invoke(app, ["status", "--help"], env={"COLUMNS": "100"}).output
    assert "--json " in status and "Print JSON" in status


def test_init_into_a_missing_folder(tmp_path: Path) -> None:
    result = _run("init", "--path", str(tmp_path / "missing" / "ghlsync.yaml"))
    _one_clear_line(result, 1, "cannot write", "No such file or directory", "--path")
