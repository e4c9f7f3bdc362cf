"""`ghlsync auth`: the OAuth login end to end against the sandbox, status, key rotation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.cli import app
from ghlsync.ghl._crypto import TokenCipher, generate_key, key_fingerprint
from ghlsync.ghl._oauth import TokenSet
from ghlsync.ghl._vault import RECONNECT_MESSAGE, RECONNECT_NEEDED, TokenVault
from ghlsync.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables import ghl_connections

ROOT = Path(__file__).resolve().parent.parent
LOGIN = "from ghlsync.cli import main; main()"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _start_login(database_url: str, ghl: SandboxServer, key: str) -> subprocess.Popen[str]:
    args = ["auth", "login", "--redirect-port", "0", "--no-browser", "--timeout", "60"]
    args += ["--base-url", ghl.url, "--marketplace-url", ghl.url, "--database-url", database_url]
    env = {
        "GHLSYNC_SECRET_KEY": key,
        "GHLSYNC_GHL_CLIENT_ID": DEFAULT_CLIENT_ID,
        "GHLSYNC_GHL_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.Popen(
        [sys.executable, "-c", LOGIN, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _authorize_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.strip().startswith("http"):
            return line.strip()
    raise AssertionError("login printed no authorize URL")


def test_login_end_to_end(engine: sa.Engine, database_url: str, sandbox: SandboxServer) -> None:
    key = generate_key()
    proc = _start_login(database_url, sandbox, key)
    url = _authorize_url(proc)
    assert url.startswith(f"{sandbox.url}/v2/oauth/chooselocation?response_type=code")
    # The "browser": GHL's consent page redirects to our loopback callback, which answers.
    page = httpx2.get(url, follow_redirects=True, timeout=30)
    assert page.status_code == 200 and "close this tab" in page.text
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Connected Location loc_sandbox" in out

    vault = TokenVault(engine, TokenCipher([key]))
    status = vault.status("loc_sandbox")
    assert status is not None and status.status == "active" and "contacts.write" in status.scopes
    with engine.connect() as conn:
        raw = conn.execute(sa.select(ghl_connections.c.access_token)).scalar_one()
    token = TokenCipher([key]).decrypt(raw)
    assert token.reveal().encode() not in bytes(raw)
    assert token.reveal() not in out + err
    answer = httpx2.get(
        f"{sandbox.url}/locations/loc_sandbox",
        headers={"Authorization": f"Bearer {token.reveal()}", "Version": "2021-07-28"},
    )
    assert answer.status_code == 200


def test_login_ignores_a_foreign_state_and_waits_for_its_own(
    sqlite_url: str, sandbox: SandboxServer
) -> None:
    proc = _start_login(sqlite_url, sandbox, generate_key())
    url = _authorize_url(proc)
    callback = httpx2.get(url).headers["location"].split("?")[0]
    forged = httpx2.get(callback, params={"code": "code-x", "state": "forged"})
    stray = httpx2.get(callback)  # no state at all: a scanner, a stale bookmark
    assert forged.status_code == 400 and "ignored" in forged.text
    assert stray.status_code == 400
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ghl_connections)).scalar() == 0
    engine.dispose()
    # The login's own redirect still completes it.
    assert httpx2.get(url, follow_redirects=True, timeout=30).status_code == 200
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Connected Location loc_sandbox" in out


def _seed(engine: sa.Engine, key: str) -> TokenVault:
    clock = FakeClock(start=1_700_000_000.0)
    vault = TokenVault(engine, TokenCipher([key]), clock=clock)
    tokens = TokenSet(
        Secret("access-secret-abcdefgh"),
        Secret("refresh-secret-abcdefgh"),
        expires_at=4_000_000_000.0,
        scope="contacts.readonly contacts.write",
    )
    vault.save("loc_a", tokens)
    vault.save("loc_b", tokens)
    vault.save_private("loc_pit", Secret("pit-secret-abcdefgh"))
    with engine.begin() as conn:
        conn.execute(
            ghl_connections.update()
            .where(ghl_connections.c.key == "loc_b")
            .values(status=RECONNECT_NEEDED, status_message=RECONNECT_MESSAGE)
        )
    return vault


def test_status_lists_connections_without_tokens(engine: sa.Engine, database_url: str) -> None:
    key = generate_key()
    _seed(engine, key)
    result = CliRunner().invoke(
        app, ["auth", "status", "--database-url", database_url], env={"GHLSYNC_SECRET_KEY": key}
    )
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if "loc_" in line}
    assert set(lines) == {"loc_a", "loc_b", "loc_pit"}
    assert "Location (oauth)" in lines["loc_a"] and "active" in lines["loc_a"]
    assert "reconnect_needed" in lines["loc_b"]
    assert "never" in lines["loc_pit"] and "(private)" in lines["loc_pit"]
    assert "secret" not in result.output


def test_status_on_an_empty_store(sqlite_url: str) -> None:
    args = ["auth", "status", "--database-url", sqlite_url]
    missing = CliRunner().invoke(app, args, env={"GHLSYNC_SECRET_KEY": ""})
    migrate(create_engine(sqlite_url))
    empty = CliRunner().invoke(app, args, env={"GHLSYNC_SECRET_KEY": ""})
    assert missing.exit_code == 1 and "no store at" in missing.output  # and none was created
    assert empty.exit_code == 0
    assert "ghlsync auth login" in empty.output


def test_rotate_key_command(engine: sa.Engine, database_url: str) -> None:
    old, new = generate_key(), generate_key()
    _seed(engine, old)
    result = CliRunner().invoke(
        app,
        ["auth", "rotate-key", "--database-url", database_url],
        env={"GHLSYNC_SECRET_KEY": f"{new},{old}"},
    )
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 3 stored secret(s)" in result.output
    with engine.connect() as conn:
        ids = set(conn.execute(sa.select(ghl_connections.c.key_id)).scalars())
    assert ids == {key_fingerprint(new)}


def test_bad_key_is_a_clear_failure(sqlite_url: str) -> None:
    result = CliRunner().invoke(
        app,
        ["auth", "rotate-key", "--database-url", sqlite_url],
        env={"GHLSYNC_SECRET_KEY": "nope"},
    )
    assert result.exit_code == 2
    assert "GHLSYNC_SECRET_KEY" in result.output


def test_new_key_prints_a_usable_key() -> None:
    result = CliRunner().invoke(app, ["auth", "new-key"])
    assert result.exit_code == 0
    cipher = TokenCipher([result.output.strip()])
    assert cipher.decrypt(cipher.encrypt("x")) == Secret("x")
