"""One store everywhere, and private files (issue 8, items 6 and 8).

Every command reads `database_url` from the same ghlsync.yaml (`--config` or
`$GHLSYNC_CONFIG`); a relative SQLite path is relative to the config file, not to the current
directory; read-only commands never create or migrate a store; the SQLite files and the config
that `init` writes are 0600, and a looser existing one draws a warning.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from ghlsync.cli import app
from ghlsync.ghl._crypto import generate_key
from ghlsync.sandbox import SandboxServer
from ghlsync.store import create_engine, current_revision, head_revision, migrate


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The commands run from a directory that is not the config's."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _config(folder: Path, body: str = "database_url: sqlite:///ghlsync.db\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ghlsync.yaml"
    path.write_text(body)
    return path


def _run(*args: str, **env: str) -> Result:
    base = {"GHLSYNC_DATABASE_URL": "", "GHLSYNC_CONFIG": "", "GHLSYNC_SECRET_KEY": ""}
    return CliRunner().invoke(app, list(args), env={**base, **env})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_command_uses_the_configs_store_relative_to_the_config(
    tmp_path: Path, elsewhere: Path
) -> None:
    config = _config(tmp_path / "site")
    key = generate_key()

    added = _run(
        "locations",
        "add",
        "loc_a",
        "--token",
        "pit-a-0123456789",
        "--config",
        str(config),
        GHLSYNC_SECRET_KEY=key,
    )
    assert added.exit_code == 0, added.output
    assert (tmp_path / "site" / "ghlsync.db").exists()
    assert not (elsewhere / "ghlsync.db").exists()

    # The same store through $GHLSYNC_CONFIG, for each reading command, without the key.
    for args in (["auth", "status"], ["locations", "list"], ["status"], ["dlq", "list"]):
        result = _run(*args, GHLSYNC_CONFIG=str(config))
        assert result.exit_code == 0, (args, result.output)
        assert "no store" not in result.output
    assert "loc_a" in _run("auth", "status", GHLSYNC_CONFIG=str(config)).output
    assert "loc_a" in _run("locations", "list", GHLSYNC_CONFIG=str(config)).output
    assert not (elsewhere / "ghlsync.db").exists()


def test_read_only_commands_never_create_a_store(tmp_path: Path, elsewhere: Path) -> None:
    config = _config(tmp_path / "empty")
    for args in (
        ["status"],
        ["dlq", "list"],
        ["dlq", "show", "1"],
        ["auth", "status"],
        ["locations", "list"],
        ["locations", "show", "loc_x"],
    ):
        result = _run(*args, "--config", str(config))
        assert result.exit_code == 1, (args, result.output)
        assert "no store at" in result.output and str(tmp_path / "empty") in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "empty" / "ghlsync.db").exists()


def _store_at(folder: Path, revision: str) -> Path:
    config = _config(folder)
    engine = create_engine(f"sqlite:///{folder / 'ghlsync.db'}")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()
    return config


def test_read_only_commands_never_migrate_an_older_store(tmp_path: Path) -> None:
    config = _store_at(tmp_path / "old", "0001")
    result = _run("status", "--config", str(config))

    assert result.exit_code == 1
    assert "older ghlsync" in result.output and "ghlsync serve" in result.output
    engine = create_engine(f"sqlite:///{tmp_path / 'old' / 'ghlsync.db'}")
    assert current_revision(engine) == "0001"  # untouched
    engine.dispose()


def test_a_store_at_a_newer_migration_is_refused_in_one_line(tmp_path: Path) -> None:
    config = _store_at(tmp_path / "new", "9999_from_the_future")

    for args in (["status"], ["dlq", "replay", "--all"], ["locations", "list"]):
        result = _run(*args, "--config", str(config))
        assert result.exit_code == 1, (args, result.output)
        assert "newer ghlsync" in result.output and "upgrade ghlsync" in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_the_sqlite_files_are_created_private(tmp_path: Path, elsewhere: Path) -> None:
    config = _config(tmp_path / "site")
    os.umask(0o022)  # the usual default, under which files come out world-readable

    result = _run("dlq", "replay", "--all", "--config", str(config))

    assert result.exit_code == 0, result.output
    # While a process has it open (as serve does), SQLite keeps its WAL and shared memory.
    engine = create_engine(f"sqlite:///{tmp_path / 'site' / 'ghlsync.db'}")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT count(*) FROM alembic_version"))
        files = sorted((tmp_path / "site").glob("ghlsync.db*"))
        modes = {f.name: _mode(f) for f in files}
    engine.dispose()
    assert modes == {"ghlsync.db": 0o600, "ghlsync.db-shm": 0o600, "ghlsync.db-wal": 0o600}


def test_a_readable_store_or_config_draws_a_warning(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "site",
        "database_url: sqlite:///ghlsync.db\ndripjobs:\n  secret: a-long-enough-secret-value\n",
    )
    assert _run("dlq", "replay", "--all", "--config", str(config)).exit_code == 0
    config.chmod(0o600)
    quiet = _run("status", "--config", str(config))
    (tmp_path / "site" / "ghlsync.db").chmod(0o644)
    config.chmod(0o640)

    loud = _run("status", "--config", str(config))

    assert "warning" not in quiet.output
    assert loud.exit_code == 0
    assert f"chmod 600 {tmp_path / 'site' / 'ghlsync.db'}" in loud.output
    assert f"chmod 600 {config}" in loud.output


def test_init_writes_the_config_private(tmp_path: Path) -> None:
    fresh, loose = tmp_path / "fresh.yaml", tmp_path / "loose.yaml"
    loose.write_text("old: content\n")
    loose.chmod(0o644)

    assert _run("init", "--path", str(fresh)).exit_code == 0
    assert _run("init", "--path", str(loose), "--force").exit_code == 0

    assert _mode(fresh) == 0o600 and _mode(loose) == 0o600
    assert "dripjobs" in loose.read_text()


def test_auth_and_locations_agree_with_serve_on_the_default_store(
    tmp_path: Path, elsewhere: Path
) -> None:
    # No --config and no $GHLSYNC_CONFIG: ./ghlsync.yaml of the working directory, as serve.
    _config(elsewhere, "database_url: sqlite:///data.db\n")
    key = generate_key()
    added = _run("locations", "add", "loc_b", "--token", "pit-b-0123456789", GHLSYNC_SECRET_KEY=key)
    assert added.exit_code == 0, added.output
    assert (elsewhere / "data.db").exists() and not (elsewhere / "ghlsync.db").exists()
    assert head_revision() is not None
    assert "loc_b" in _run("auth", "status").output


def test_auth_login_uses_the_configs_store_and_base_url(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    config = site / "ghlsync.yaml"
    assert _run("init", "--sandbox", sandbox.url, "--path", str(config)).exit_code == 0
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    key = generate_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHLSYNC_")}
    env |= {"GHLSYNC_SECRET_KEY": key, "GHLSYNC_CONFIG": str(config)}
    env |= {
        "GHLSYNC_GHL_CLIENT_ID": "sandbox-client",
        "GHLSYNC_GHL_CLIENT_SECRET": "sandbox-secret",
    }
    args = ["auth", "login", "--redirect-port", "0", "--no-browser", "--timeout", "30"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ghlsync.cli import main; main()", *args,
         "--marketplace-url", sandbox.url],
        cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    url = next(line.strip() for line in proc.stderr if line.strip().startswith("http"))

    page = httpx2.get(url, follow_redirects=True, timeout=30)  # the "browser" consents
    out, err = proc.communicate(timeout=30)

    assert page.status_code == 200 and proc.returncode == 0, err
    assert "Connected Location loc_sandbox" in out
    # init --sandbox runs the sandbox environment, whose store is ghlsync-sandbox.db.
    stores = ("ghlsync-sandbox.db", "ghlsync.db")
    assert (site / stores[0]).exists() and not any((elsewhere / s).exists() for s in stores)
    engine = create_engine(f"sqlite:///{site / stores[0]}")
    with engine.connect() as conn:  # the token is the sandbox environment's (its env. guard)
        stamped = conn.execute(sa.text("SELECT environment FROM ghl_connections")).scalars().all()
    engine.dispose()
    assert stamped == ["sandbox"]
    status = _run("auth", "status", GHLSYNC_CONFIG=str(config))
    assert "loc_sandbox" in status.output and "Location (oauth)" in status.output


def test_read_only_commands_leave_an_empty_postgresql_database_empty(postgres_url: str) -> None:
    result = _run("status", GHLSYNC_DATABASE_URL=postgres_url)

    assert result.exit_code == 1, result.output
    assert "has no ghlsync tables yet" in result.output and "Traceback" not in result.output
    engine = create_engine(postgres_url)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()
